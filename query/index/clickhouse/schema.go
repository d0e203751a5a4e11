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
	engine := func(order string) string { return s.recordEngine(order, "") }
	r := s.ddlReplacer()

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

// recordEngine is the engine clause of every record table, ordered by order, with an optional
// TTL clause (which must come before SETTINGS).
//
// Partitions are months of received (when Lineage received the record, assigned by the
// ingester, so each batch falls in one or two partitions whatever times clients write), which
// is also the unit retention drops on servers without TTL.
func (s *Store) recordEngine(order, ttl string) string {
	settings := "index_granularity = " + indexGranularity
	if s.feat.fsyncAfterInsert {
		settings += ", fsync_after_insert = 1, fsync_part_directory = 1"
	}
	if s.feat.ttl {
		settings += ", ttl_only_drop_parts = 1"
	}
	if ttl != "" {
		ttl = "\nTTL " + ttl
	}
	return `ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received)
ORDER BY (` + order + `)` + ttl + `
SETTINGS ` + settings
}

// ddlReplacer fills the placeholders of the DDL templates: {db} is the database and {lc} the
// type of columns with few distinct values.
func (s *Store) ddlReplacer() *strings.Replacer {
	lc := "String"
	if s.feat.lowCardinality {
		lc = "LowCardinality(String)"
	}
	return strings.NewReplacer("{lc}", lc, "{db}", s.db)
}

// Subject kinds of records_by_subject: which record field the subject column holds.
const (
	kindAgent  = 1 // agent_id: what an agent did
	kindPolicy = 2 // policy_id: what a policy decided
	kindParent = 3 // parent_id: the actions an action caused (only records that have a parent)
)

// subjectSelect is the SELECT that turns records rows into records_by_subject rows, shared by
// the materialized view and migration 2's back-fill so both write identical rows (and a row
// written by both is an exact copy, which reads and merges deduplicate). ARRAY JOIN over two
// parallel arrays makes one row per kind; rows without a parent are left out. policy_id is cast
// because it is LowCardinality on newer servers and array elements need one type.
const subjectSelect = `SELECT tenant, kind, subject, time_ns, log_index, user_id, agent_id, effect,
	action_type, policy_version, received
FROM {db}.records
ARRAY JOIN [1, 2, 3] AS kind, [agent_id, CAST(policy_id AS String), parent_id] AS subject
WHERE subject != ''`

// schemaV2 is migration 2: records_by_subject, which serves Records for the agent, policy and
// parent subjects and PolicyStats, replacing records_by_agent (which no query read).
//
// records_by_subject holds one row per (record, subject kind), ordered by (tenant, kind,
// subject, time_ns, log_index): a subject's rows in a time window are one key range, read in
// the order Records returns them. It carries the columns Records filters on (agent, effect,
// action type) and PolicyStats groups by (effect, policy version), so filters, the cursor and
// the limit are applied there, on narrow rows, and only the page's rows are read from records
// (by their full sorting key, which user_id, time_ns and log_index complete). One table with a
// kind column instead of three tables means one more part per Apply instead of three.
//
// The statements are idempotent, as migrations must be here (migrate.go): the view is created
// before the back-fill, so a record inserted in between is copied by both (a harmless exact
// copy) rather than by neither; a back-fill interrupted and run again only adds copies. On a
// large index the back-fill copies two or three narrow rows per record at Open; rebuilding the
// index (lineagectl rebuild-index) is the alternative. On servers with TTL the table is created
// with the retention window, because reconcileTTL only alters tables when the window changes.
func schemaV2(s *Store) []string {
	r := s.ddlReplacer()
	ttl := ""
	if s.feat.ttl && s.retention > 0 {
		ttl = ttlExpr(s.retention)
	}
	return []string{
		r.Replace(`CREATE TABLE IF NOT EXISTS {db}.records_by_subject (
	tenant         {lc},
	kind           UInt8,
	subject        String,
	time_ns        Int64,
	log_index      UInt64,
	user_id        String,
	agent_id       String,
	effect         {lc},
	action_type    {lc},
	policy_version {lc},
	received       DateTime
) `) + s.recordEngine("tenant, kind, subject, time_ns, log_index", ttl),
		r.Replace(`CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.records_by_subject_mv TO {db}.records_by_subject AS
` + subjectSelect),
		r.Replace(`INSERT INTO {db}.records_by_subject (tenant, kind, subject, time_ns, log_index, user_id,
	agent_id, effect, action_type, policy_version, received)
` + subjectSelect),
		r.Replace(`DROP TABLE IF EXISTS {db}.records_by_agent_mv`),
		r.Replace(`DROP TABLE IF EXISTS {db}.records_by_agent`),
	}
}

// recordTables are the tables that hold rows per record, which retention expires.
var recordTables = []string{"records", "records_by_id", "records_by_subject"}
