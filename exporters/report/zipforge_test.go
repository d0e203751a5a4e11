package report

import "github.com/lineage-audit/lineage/internal/ziptest"

// Archive forgeries for the bundle tests (verify_test.go): they edit a bundle the exporter
// wrote the way an attacker would. They live in internal/ziptest, shared with
// verify/zipcheck_test.go (which tests the layout check itself on small archives); these are
// the names verify_test.go calls them by.
var (
	forgedMember          = ziptest.ForgedMember
	insertBeforeDirectory = ziptest.InsertBeforeDirectory
	prependMember         = ziptest.PrependMember
	renameLocal           = ziptest.RenameLocal
	hideAfterStream       = ziptest.HideAfterStream
)

// streamed is a member as a streaming reader (Java's ZipInputStream) sees it: a
// ziptest.Streamed under the field names verify_test.go uses.
type streamed struct {
	name string
	data []byte
}

// streamMembers reads b as a streaming reader does (ziptest.StreamMembers).
func streamMembers(b []byte) ([]streamed, error) {
	ms, err := ziptest.StreamMembers(b)
	var out []streamed
	for _, m := range ms {
		out = append(out, streamed{name: m.Name, data: m.Data})
	}
	return out, err
}

func streamedNames(ms []streamed) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
	}
	return names
}
