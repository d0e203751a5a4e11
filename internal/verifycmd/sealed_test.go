package verifycmd

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/exporters/report/reporttest"
)

// TestVerifySealedBundle: `verify BUNDLE` of an export of an erasure-on log reports the sealed
// fields it checked, clear and erased, after a subject's erasure.
func TestVerifySealedBundle(t *testing.T) {
	ctx := context.Background()
	r, ks := reporttest.NewSealed(t)
	tenant := r.Recs[0].Tenant
	user, _ := r.TopUser(tenant)
	if _, err := ks.Erase(ctx, tenant, user, "GDPR Art. 17 request 9"); err != nil {
		t.Fatal(err)
	}
	e := &report.Exporter{Log: r.Log, Signer: r.Signer, Verifier: r.Verifier, Keys: ks, Generator: "lineage test"}
	out := filepath.Join(t.TempDir(), "exp")
	res, err := e.Export(ctx, report.Request{Kind: report.KindFannieMae, Tenant: tenant,
		From: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)},
		out, report.Run{ID: "exp-sealed", RequestedBy: "apikey:compliance"})
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := run(t, Verify, filepath.Join(out, res.Bundle), "--verifier", r.VKey)
	if err != nil || !strings.Contains(stdout, "OK: sealed personal fields at export time: ") || !strings.Contains(stdout, " erased (1 subject keys)") {
		t.Fatalf("verify: %v\n%s", err, stdout)
	}
}
