package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
)

// serverVersion is a ClickHouse release number, major.minor.patch ("18.16.1", "24.8.4.13"; a
// fourth component, the build, is ignored).
type serverVersion struct {
	major, minor, patch int
}

// parseVersion parses what SELECT version() returns.
func parseVersion(s string) (serverVersion, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return serverVersion{}, fmt.Errorf("server version %q: want major.minor[.patch…]", s)
	}
	var n [3]int
	for i := 0; i < len(parts) && i < 3; i++ {
		v, err := strconv.Atoi(parts[i])
		if err != nil || v < 0 {
			return serverVersion{}, fmt.Errorf("server version %q: component %q is not a number", s, parts[i])
		}
		n[i] = v
	}
	return serverVersion{n[0], n[1], n[2]}, nil
}

// atLeast reports whether v is major.minor or later.
func (v serverVersion) atLeast(major, minor int) bool {
	return v.major > major || (v.major == major && v.minor >= minor)
}

// String formats v as major.minor.patch.
func (v serverVersion) String() string {
	return fmt.Sprintf("%d.%d.%d", v.major, v.minor, v.patch)
}

// modernMajor and modernMinor are the release from which the driver uses the features below:
// 21.8, a long-term-support release on which all of them are generally available (not behind
// allow_experimental_* settings). Several appeared earlier (LowCardinality in 19.x, TTL in 19.6,
// skip indexes experimentally in 19.x), but one threshold at a release where they are all stable
// keeps the number of schema variants at two: the 18.16 one that the tests run on every machine,
// and this one. Servers in between get the 18.16 schema, which is correct there, only bigger and
// without server-side expiry.
const (
	modernMajor = 21
	modernMinor = 8
)

// features are the optional server capabilities the driver uses, decided once at Open.
type features struct {
	// lowCardinality stores columns with few distinct values (tenant, effect, action type, role,
	// policy, AI system) dictionary-encoded: smaller on disk and faster to filter and group by.
	lowCardinality bool
	// zstd compresses the canonical JSON, the bulk of the index, with ZSTD instead of LZ4.
	zstd bool
	// skipIndexes adds bloom-filter skip indexes on parent_id and delegation_token, which let
	// lineage queries that follow action → caused-action edges or one delegation token skip
	// most granules of a tenant instead of scanning them.
	skipIndexes bool
	// ttl lets the server expire rows past the retention window itself (TTL … with
	// ttl_only_drop_parts, so whole parts are dropped rather than rewritten). Without it the
	// driver drops expired monthly partitions (retention.go).
	ttl bool
	// fsyncAfterInsert makes the server fsync each inserted part before acknowledging it, so
	// rows are durable before the position that covers them is written (package doc).
	fsyncAfterInsert bool
}

// featuresOf returns what a server of version v supports.
func featuresOf(v serverVersion) features {
	modern := v.atLeast(modernMajor, modernMinor)
	return features{
		lowCardinality:   modern,
		zstd:             modern,
		skipIndexes:      modern,
		ttl:              modern,
		fsyncAfterInsert: modern,
	}
}

// String lists the enabled features, for schema_migrations and logs.
func (f features) String() string {
	var on []string
	for _, x := range []struct {
		name string
		on   bool
	}{
		{"low_cardinality", f.lowCardinality},
		{"zstd", f.zstd},
		{"skip_indexes", f.skipIndexes},
		{"ttl", f.ttl},
		{"fsync_after_insert", f.fsyncAfterInsert},
	} {
		if x.on {
			on = append(on, x.name)
		}
	}
	if len(on) == 0 {
		return "base"
	}
	return strings.Join(on, ",")
}
