package lineage

import _ "embed" // for SchemaJSON

// SchemaJSON is the JSON Schema (draft 2020-12) of lineage.decision/v1, the published form of the
// contract that DecodeRecord enforces. It is embedded so that the binary serves exactly the schema
// it was built with (GET /v1/schema) and publishers can validate records before sending them;
// TestSchemaMatchesRecord keeps it in step with the Record type and the decoder. Treat it as
// read-only.
//
//go:embed schema/decision-v1.json
var SchemaJSON []byte
