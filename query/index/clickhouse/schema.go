package clickhouse

import "strings"

// indexGranularity is the number of rows per primary-index mark in the record tables, 1,024
// instead of ClickHouse's 8,192. ClickHouse reads whole granules, and 18.16 has no adaptive
// granularity, so a point lookup (Get, Lookup) decompresses a whole granule of canonical JSON:
// 8,192 rows is about 8 MB per Get, 1,024 rows about 1 MB. The price is an in-memory primary
// index eight times larger, about 50 MB per billion records, which a server holding a billion
// records can spare.
const indexGranularity = "1024"

// schemaV1 is migration 1: the record tables, the views that fill the secondary tables, the
// position, and the TTL bookkeeping of retention.go.
//
// Absent optional fields are stored as empty strings rather than NULL: Nullable columns cost a
// second column on disk and are slow to filter in ClickHouse, and no record field can be present
// and empty (the record schema requires non-empty ids and texts).
//
// Every record table is a ReplacingMergeTree whose sorting key ends in log_index, so a re-inserted
// row (an Apply repeated after a crash) is an exact copy under the same key, which merges remove
// and reads skip; see the package doc.
func schemaV1(s *Store) []string {
	f := s.feat
	lc := "String"
	if f.lowCardinality {
		lc = "LowCardinality(String)"
	}
	canonicalCodec := ""
	if f.zstd {
		canonicalCodec = " CODEC(ZSTD(3))"
	}
	skipIndexes := ""
	if f.skipIndexes {
		// GRANULARITY 4: one filter per 4 granules (4,096 rows), small enough to skip most of
		// a large tenant and cheap enough to keep in memory.
		skipIndexes = `,
	INDEX parent_bf parent_id TYPE bloom_filter(0.01) GRANULARITY 4,
	INDEX token_bf delegation_token TYPE bloom_filter(0.01) GRANULARITY 4`
	}
	settings := "index_granularity = " + indexGranularity
	if f.fsyncAfterInsert {
		settings += ", fsync_after_insert = 1, fsync_part_directory = 1"
	}
	if f.ttl {
		settings += ", ttl_only_drop_parts = 1"
	}
	// Partitions are months of received (when Lineage received the record, assigned by the
	// ingester, so each batch falls in one or two partitions whatever times clients write),
	// which is also the unit retention drops on servers without TTL.
	engine := func(order string) string {
		return `ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received)
ORDER BY (` + order + `)
SETTINGS ` + settings
	}
	r := strings.NewReplacer("{lc}", lc, "{db}", s.db)

	return []string{
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.records (
	log_index          UInt64,
	tenant             {lc},
	id                 String,
	time_ns            Int64,
	received           DateTime,
	user_id            String,
	user_issuer        String,
	agent_id           String,
	role               {lc},
	parent_id          String,
	action_type        {lc},
	action_target      String,
	effect             {lc},
	policy_id          {lc},
	policy_version     {lc},
	delegation_token   String,
	ai_system_id       {lc},
	oversight_reviewer String,
	source_verified    UInt8,
	record_hash        FixedString(32),
	canonical          String`+canonicalCodec+skipIndexes+`
) `) + engine("tenant, user_id, time_ns, log_index"),

		// records_by_id answers "where is record (tenant, id)" and "which tenants have id";
		// user_id and time_ns complete the records key, so Get reads records by its primary
		// key instead of scanning a tenant.
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.records_by_id (
	id          String,
	tenant      {lc},
	log_index   UInt64,
	user_id     String,
	time_ns     Int64,
	received    DateTime,
	record_hash FixedString(32)
) `) + engine("id, tenant, log_index"),

		// records_by_agent serves "everything an agent did"; user_id completes the records key.
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.records_by_agent (
	tenant    {lc},
	agent_id  String,
	time_ns   Int64,
	log_index UInt64,
	user_id   String,
	id        String,
	received  DateTime
) `) + engine("tenant, agent_id, time_ns, log_index"),

		// The views run inside every INSERT into records, so one INSERT from Apply fills all
		// three tables. They must exist before the first insert: a view does not back-fill.
		r.Replace(`CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.records_by_id_mv TO {db}.records_by_id AS
SELECT id, tenant, log_index, user_id, time_ns, received, record_hash FROM {db}.records`),
		r.Replace(`CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.records_by_agent_mv TO {db}.records_by_agent AS
SELECT tenant, agent_id, time_ns, log_index, user_id, id, received FROM {db}.records`),

		// position gets one row per Apply; the position is max(next_index), and merges keep
		// only the row with the highest next_index (the version column).
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.position (
	singleton  UInt8,
	next_index UInt64,
	applied_ns Int64
) ENGINE = ReplacingMergeTree(next_index) ORDER BY singleton`),

		// ttl_state remembers the retention last applied as a table TTL, so Open alters the
		// tables (which makes the server rewrite their TTL metadata) only when it changes.
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.ttl_state (
	ttl_seconds Int64,
	applied_ns  Int64
) ENGINE = ReplacingMergeTree(applied_ns) ORDER BY tuple()`),
	}
}

// recordTables are the tables that hold a row per record, which retention expires.
var recordTables = []string{"records", "records_by_id", "records_by_agent"}
