package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/exporters/report/reporttest"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sqlitekeys"
	"github.com/lineage-audit/lineage/verify"
)

// markerRE matches an ErasedMarker (a key id is 22 characters of base64url).
var markerRE = regexp.MustCompile(`erased \(key [A-Za-z0-9_-]{22}\)`)

// sealedRig is a real Tessera log of sealed (v2) entries with its real SQLite key store
// (reporttest.NewSealed).
type sealedRig struct {
	*rig
	keys *sqlitekeys.SQLiteStore
	recs []lineage.Record
}

func newSealedRig(t *testing.T) *sealedRig {
	t.Helper()
	r, ks := reporttest.NewSealed(t)
	return &sealedRig{rig: r, keys: ks, recs: r.Recs}
}

func (s *sealedRig) export(t *testing.T, keys seal.KeyStore, id string) (*Result, *Document, string, error) {
	t.Helper()
	e := testExporter(s.rig)
	e.Keys = keys
	req := june(KindEUAIAct, "")
	req.Tenant = s.recs[0].Tenant // acme-bank
	req.Formats = []string{"json", "csv", "html"}
	dir := filepath.Join(t.TempDir(), id)
	res, err := e.Export(context.Background(), req, dir, Run{ID: id, RequestedBy: "test"})
	if err != nil {
		return nil, nil, dir, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return res, &doc, dir, nil
}

// exportFiles returns every file of an export directory, the bundle's members included.
func exportFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
		if strings.HasSuffix(e.Name(), ".zip") {
			for _, m := range readBundle(t, p) {
				out[e.Name()+"/"+m.name] = m.data
			}
		}
	}
	return out
}

// TestSealedExport exports an erasure-on log: the report shows the clear user ids and the bundle
// carries their openings; after the erasure of a person the old bundle still verifies, and a
// new export marks the person erased, counts it, verifies, and holds the clear id nowhere.
func TestSealedExport(t *testing.T) {
	s := newSealedRig(t)
	ctx := context.Background()
	tenant := s.recs[0].Tenant
	victim, target := s.TopUser(tenant)
	if target == "" {
		t.Fatal("no target of the victim to look for")
	}

	res, doc, dir, err := s.export(t, s.keys, "exp-before")
	if err != nil {
		t.Fatal(err)
	}
	files := exportFiles(t, dir)
	for _, name := range []string{"report.json", "decisions.csv", "report.html"} {
		b := files[name]
		if !bytes.Contains(b, []byte(victim)) {
			t.Errorf("%s does not show the clear user id %q", name, victim)
		}
		if bytes.Contains(b, []byte(seal.SealedPrefix)) || markerRE.Match(b) {
			t.Errorf("%s shows a sealed token or an erasure while every key exists", name)
		}
	}
	er := doc.Summary.Erasure
	if er == nil || er.RecordsSealed != doc.Summary.Records || er.ClearFields < doc.Summary.Records || er.ErasedFields != 0 || er.ErasedSubjects != 0 || er.ClearSubjects == 0 {
		t.Fatalf("erasure summary before the erasure: %+v (records %d)", er, doc.Summary.Records)
	}
	if len(res.ClearKeyIDs) == 0 {
		t.Fatal("the result names no clear key ids")
	}
	oldBundle := filepath.Join(dir, res.Bundle)
	rep, err := verify.VerifyBundle(oldBundle, s.Verifier)
	if err != nil {
		t.Fatalf("bundle before the erasure: %v", err)
	}
	want := verify.SealedCounts{ClearFields: er.ClearFields, ClearKeys: er.ClearSubjects}
	if rep.Sealed == nil || *rep.Sealed != want || rep.Manifest.Sealed == nil || *rep.Manifest.Sealed != want {
		t.Fatalf("verifier's sealed counts %+v, manifest %+v; want %+v", rep.Sealed, rep.Manifest.Sealed, want)
	}
	if rep.Records != res.Records || rep.Citations == 0 {
		t.Fatalf("verified %d records (want %d), %d citations", rep.Records, res.Records, rep.Citations)
	}

	kids, err := s.keys.Erase(ctx, tenant, victim, "GDPR Art. 17 request 42")
	if err != nil || len(kids) != 1 {
		t.Fatalf("erase: %v %v", kids, err)
	}
	kid := kids[0].String()
	found := false
	for _, k := range res.ClearKeyIDs {
		found = found || k == kid
	}
	if !found {
		t.Fatalf("the first export's clear key ids %v lack the erased key %s", res.ClearKeyIDs, kid)
	}

	// The old bundle is self-contained: it still verifies, openings and all.
	if _, err := verify.VerifyBundle(oldBundle, s.Verifier); err != nil {
		t.Fatalf("old bundle after the erasure: %v", err)
	}

	res2, doc2, dir2, err := s.export(t, s.keys, "exp-after")
	if err != nil {
		t.Fatal(err)
	}
	files2 := exportFiles(t, dir2)
	for name, b := range files2 {
		if bytes.Contains(b, []byte(victim)) || bytes.Contains(b, []byte(target)) {
			t.Errorf("%s still holds the erased person's id or target", name)
		}
	}
	marker := ErasedMarker(kid)
	for _, name := range []string{"report.json", "decisions.csv", "persons.csv", "report.html"} {
		if !bytes.Contains(files2[name], []byte(marker)) {
			t.Errorf("%s does not show %q", name, marker)
		}
		if bytes.Contains(files2[name], []byte(seal.SealedPrefix)) {
			t.Errorf("%s shows a sealed token", name)
		}
	}
	if !bytes.Contains(files2["report.html"], []byte(`id="erasure"`)) {
		t.Error("report.html has no erasure paragraph")
	}
	var person *PersonRow
	for i := range doc2.Persons {
		if doc2.Persons[i].ID == marker {
			person = &doc2.Persons[i]
		}
	}
	if person == nil || person.RecordsAuthorized == 0 {
		t.Fatalf("persons table: no row %q with records (one row per erased person)", marker)
	}
	er2 := doc2.Summary.Erasure
	if er2 == nil || er2.ErasedSubjects != 1 || er2.ErasedFields < 2*person.RecordsAuthorized || er2.RecordsWithErasedFields < person.RecordsAuthorized ||
		er2.ClearFields+er2.ErasedFields != er.ClearFields || er2.ClearSubjects != er.ClearSubjects-1 {
		t.Fatalf("erasure summary after the erasure: %+v (before %+v, person %+v)", er2, er, person)
	}
	rowsErased := 0
	for _, d := range doc2.Decisions {
		if d.UserID == marker {
			rowsErased++
			if len(d.ErasedFields) < 2 || d.ErasedFields[0].KeyID != kid {
				t.Fatalf("decision %s: erased fields %+v", d.RecordID, d.ErasedFields)
			}
		}
	}
	if uint64(rowsErased) != person.RecordsAuthorized {
		t.Fatalf("%d decisions marked erased; the person authorized %d", rowsErased, person.RecordsAuthorized)
	}
	for _, k := range res2.ClearKeyIDs {
		if k == kid {
			t.Fatal("the second export names the erased key among its clear keys")
		}
	}
	rep2, err := verify.VerifyBundle(filepath.Join(dir2, res2.Bundle), s.Verifier)
	if err != nil {
		t.Fatalf("bundle after the erasure: %v", err)
	}
	want2 := verify.SealedCounts{ClearFields: er2.ClearFields, ErasedFields: er2.ErasedFields, ClearKeys: er2.ClearSubjects, ErasedKeys: 1}
	if *rep2.Sealed != want2 || *rep2.Manifest.Sealed != want2 {
		t.Fatalf("sealed counts after the erasure: verifier %+v, manifest %+v; want %+v", rep2.Sealed, rep2.Manifest.Sealed, want2)
	}
}

// TestSealedExportFailsClosed: without a key store, or with a store that lacks the keys (no
// tombstone: lost, restored from an old backup), the export fails; nothing is shown as erased.
func TestSealedExportFailsClosed(t *testing.T) {
	s := newSealedRig(t)
	if _, _, _, err := s.export(t, nil, "exp-nokeys"); !errors.Is(err, ErrNoKeyStore) {
		t.Fatalf("export without a key store: %v, want ErrNoKeyStore", err)
	}
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := sqlitekeys.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "empty.sqlite"), mk, sqlitekeys.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	_, _, dir, err := s.export(t, empty, "exp-lost")
	if !errors.Is(err, seal.ErrKeyMissing) || !strings.Contains(err.Error(), "not reported as erased") {
		t.Fatalf("export with a key store that lost the keys: %v, want seal.ErrKeyMissing", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err == nil {
		t.Fatal("a failed export left a report")
	}
	// A closed store (unreachable) fails too.
	s.keys.Close()
	if _, _, _, err := s.export(t, s.keys, "exp-closed"); err == nil {
		t.Fatal("export with a closed key store succeeded")
	}
}

// TestSealedBundleTampering: an altered opening value, a wrong nonce, an opening for a field
// that is not sealed, an opening dropped while the manifest counts it, or openings on a v1 line
// fail the bundle, even with a manifest re-signed by the log's key.
func TestSealedBundleTampering(t *testing.T) {
	s := newSealedRig(t)
	res, _, dir, err := s.export(t, s.keys, "exp-tamper-sealed")
	if err != nil {
		t.Fatal(err)
	}
	b := readBundle(t, filepath.Join(dir, res.Bundle))
	const recFile = "records/records-00000.ndjson"
	var line verify.EvidenceLine
	if err := json.Unmarshal([]byte(lines(b.get(recFile))[0]), &line); err != nil {
		t.Fatal(err)
	}
	if len(line.Openings) < 2 {
		t.Fatalf("the first records line carries %d openings", len(line.Openings))
	}
	edit := func(f func(l *verify.EvidenceLine)) bundleFiles {
		l := line
		l.Openings = append([]verify.Opening(nil), line.Openings...)
		for i := range l.Openings {
			l.Openings[i].Nonce = bytes.Clone(l.Openings[i].Nonce)
		}
		f(&l)
		enc, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		return b.set(recFile, setLine(b.get(recFile), 0, string(enc)+"\n")).resign(t, s.Signer)
	}
	cases := map[string]struct {
		f    func(l *verify.EvidenceLine)
		code string
	}{
		"altered value": {func(l *verify.EvidenceLine) { l.Openings[0].Value += "x" }, verify.ProblemRecordOpening},
		"wrong nonce":   {func(l *verify.EvidenceLine) { l.Openings[0].Nonce[0] ^= 1 }, verify.ProblemRecordOpening},
		"short nonce":   {func(l *verify.EvidenceLine) { l.Openings[0].Nonce = l.Openings[0].Nonce[:8] }, verify.ProblemRecordOpening},
		"swapped values": {func(l *verify.EvidenceLine) {
			l.Openings[0].Value, l.Openings[1].Value = l.Openings[1].Value, l.Openings[0].Value
		}, verify.ProblemRecordOpening},
		"not sealed": {func(l *verify.EvidenceLine) {
			l.Openings = append(l.Openings, verify.Opening{Path: "/agent/id", Value: "x", Nonce: make([]byte, 32)})
		}, verify.ProblemRecordOpening},
		"given twice":     {func(l *verify.EvidenceLine) { l.Openings = append(l.Openings, l.Openings[0]) }, verify.ProblemRecordOpening},
		"opening dropped": {func(l *verify.EvidenceLine) { l.Openings = l.Openings[1:] }, verify.ProblemSealedCount},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			rep := verifyTampered(t, edit(c.f), s.Verifier, c.code, "")
			if hasCode(rep, verify.ProblemFileChanged) || hasCode(rep, verify.ProblemManifestSignature) {
				t.Fatalf("the re-signed bundle should fail on the opening alone:\n%s", problemList(rep))
			}
		})
	}

	// Openings on a v1 line: the base rig's bundle is all v1.
	base, r := baseBundle(t)
	var v1 verify.EvidenceLine
	if err := json.Unmarshal([]byte(lines(base.get(recFile))[0]), &v1); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(lines(base.get(recFile))[0], `"openings"`) {
		t.Fatal("a v1 records line carries an openings member")
	}
	v1.Openings = line.Openings[:1]
	enc, _ := json.Marshal(v1)
	verifyTampered(t, base.set(recFile, setLine(base.get(recFile), 0, string(enc)+"\n")).resign(t, r.Signer), r.Verifier, verify.ProblemRecordOpening, recFile)
}

// BenchmarkSealedExport compares an export of the same 600 demo records (two tenants, June
// 2026) logged as v1 entries and as sealed v2 entries opened with the real SQLite key store:
//
//	go test -run '^$' -bench SealedExport -benchtime 20x ./exporters/report/
func BenchmarkSealedExport(b *testing.B) {
	sealed, ks := reporttest.NewSealed(b)
	plain := reporttest.New(b, sealed.Recs)
	for _, c := range []struct {
		name string
		r    *rig
		keys seal.KeyStore
	}{{"v1", plain, nil}, {"v2", sealed, ks}} {
		b.Run(c.name, func(b *testing.B) {
			e := testExporter(c.r)
			e.Keys = c.keys
			req := june(KindFannieMae, "")
			req.Tenant = sealed.Recs[0].Tenant
			var records uint64
			for i := 0; b.Loop(); i++ {
				res, err := e.Export(context.Background(), req, filepath.Join(b.TempDir(), "x"), Run{ID: "exp-bench", RequestedBy: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				records = res.Records
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(records), "µs/record")
		})
	}
}
