package lineage

// Limits on a record. They bound the memory and CPU an untrusted publisher can make ingest spend
// on one message, and keep every field small enough to index and to print in a report.
const (
	// MaxRecordSize is the largest record, in bytes, that DecodeRecord accepts, both as sent and
	// in canonical form. It is well under NATS's default 1 MiB message limit, so a record never
	// has to be split.
	MaxRecordSize = 64 << 10
	// MaxDepth is the deepest nesting of objects and arrays a record may have, counting the
	// record object itself as depth 1.
	MaxDepth = 32
	// MaxFreeFormSize bounds the canonical size of policy_context and of identity_object, the
	// two fields whose content Lineage does not interpret.
	MaxFreeFormSize = 16 << 10
	// MaxStringLen bounds every string in a record, in bytes.
	MaxStringLen = 2048
	// MaxIDLen bounds identifiers: the record id, parent_id, source.id, policy ids, token ids.
	MaxIDLen = 128
	// MaxPrincipalIDLen bounds user, reviewer and agent identifiers, which are often URIs (SPIFFE
	// ids, OIDC subjects qualified by issuer) and so longer than opaque ids.
	MaxPrincipalIDLen = 512
	// MaxScopeItems bounds delegation.scope.
	MaxScopeItems = 64
	// MaxActors bounds delegation.actors, the RFC 8693 act chain.
	MaxActors = 16
	// MaxSafeguards bounds safeguards.
	MaxSafeguards = 64
)
