package exporters

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestOpenAPIFragmentMatchesRoutes keeps testdata/openapi-exports.json (the export routes, to
// merge into query/openapi.json) in step with Mount: same paths, same methods.
func TestOpenAPIFragmentMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("testdata/openapi-exports.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	(&Service{}).Mount(e.Group("/v1"))
	param := regexp.MustCompile(`:([a-z_]+)`)
	served := map[string]bool{}
	for _, r := range e.Routes() {
		p := param.ReplaceAllString(r.Path, "{$1}")
		served[strings.ToLower(r.Method)+" "+p] = true
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			t.Errorf("route %s %s is not in the fragment", r.Method, p)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !served[m+" "+p] {
				t.Errorf("the fragment documents %s %s, which is not served", m, p)
			}
		}
	}
}
