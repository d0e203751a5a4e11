package ingest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSourceSignatures(t *testing.T) {
	recs := records(40)
	// Two tenants in the demo data: the first requires signatures, the second does not.
	strict, lax := recs[0].Tenant, ""
	for _, r := range recs {
		if r.Tenant != strict {
			lax = r.Tenant
			break
		}
	}
	pick := func(tenant string, n int) []lineage.Record {
		var out []lineage.Record
		for _, r := range recs {
			if r.Tenant == tenant && len(out) < n {
				out = append(out, r)
			}
		}
		return out
	}
	s, l := pick(strict, 6), pick(lax, 2)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	keys, err := ingest.NewSourceKeys(ingest.SourceKeyFile{
		Keys:              []ingest.SourceKey{{Tenant: strict, SourceID: s[0].Source.ID, KeyID: "k1", PublicKey: pub}},
		RequireSignatures: []string{strict},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := newRigWith(t, keys)
	send := func(rec lineage.Record, sig func(body []byte) string) {
		body := mustJSON(rec)
		hdr := map[string]string{}
		if sig != nil {
			hdr[ingest.HeaderSignature] = sig(body)
		}
		r.publish(t, ingest.RecordsPrefix+rec.Tenant, body, hdr)
	}
	s[1].Source.ID = s[0].Source.ID
	s[2].Source.ID = s[0].Source.ID
	s[3].Source.ID = "some-other-gateway"
	send(s[0], func(b []byte) string { return ingest.Sign(priv, "k1", b) })              // verified
	send(s[1], func(b []byte) string { return ingest.Sign(other, "k1", b) })             // wrong key
	send(s[2], func(b []byte) string { return ingest.Sign(priv, "k9", b) })              // unknown key id
	send(s[3], func(b []byte) string { return ingest.Sign(priv, "k1", b) })              // key of another source
	send(s[4], nil)                                                                      // unsigned, tenant requires
	send(s[5], func(b []byte) string { return ingest.Sign(priv, "k1", append(b, ' ')) }) // signature over other bytes
	send(l[0], nil)                                                                      // unsigned, tenant does not require
	send(l[1], func(b []byte) string { return "ed25519:broken" })                        // malformed header
	if got := r.settle(t); got != 2 {
		t.Fatalf("log size %d, want 2 (one verified, one unsigned)", got)
	}
	for code, want := range map[string]float64{ingest.ReasonBadSignature: 4, ingest.ReasonUnknownSourceKey: 1, ingest.ReasonSignatureRequired: 1} {
		if got := testutil.ToFloat64(r.metrics.Quarantined.WithLabelValues(code)); got != want {
			t.Errorf("quarantined[%s] = %v, want %v", code, got, want)
		}
	}
	cp, err := r.log.Checkpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	entries, err := r.log.Entries(context.Background(), 0, 2, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	verified := map[string]bool{}
	for _, e := range entries {
		env, err := lineage.DecodeEnvelope(e)
		if err != nil {
			t.Fatal(err)
		}
		verified[env.Record.ID] = env.SourceVerified
	}
	if !verified[s[0].ID] || verified[l[0].ID] {
		t.Fatalf("source_verified in the ledger: %v; want %s true and %s false", verified, s[0].ID, l[0].ID)
	}
}
