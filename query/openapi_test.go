package query

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/prometheus/client_golang/prometheus"
)

// TestOpenAPIMatchesRoutes keeps query/openapi.json and the gin routes in step: every route is
// documented with its method, and every documented path is served.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	param := regexp.MustCompile(`[:*]([a-z_]+)`)
	served := map[string]bool{}
	for _, r := range (&API{LogDir: "x", Gatherer: prometheus.NewRegistry(), Mounts: []func(*gin.RouterGroup){(&ingest.HTTP{}).Mount, (&exporters.Service{}).Mount}}).Engine().Routes() {
		p := param.ReplaceAllString(r.Path, "{$1}")
		key := strings.ToLower(r.Method) + " " + p
		served[key] = true
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			t.Errorf("route %s %s is not in openapi.json", r.Method, p)
		}
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, m+" "+p)
		}
	}
	sort.Strings(documented)
	for _, k := range documented {
		if !served[k] {
			t.Errorf("openapi.json documents %s, which is not served", k)
		}
	}
}
