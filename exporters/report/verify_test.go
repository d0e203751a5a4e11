package report

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/ziptest"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// member is one file of a bundle being tampered with.
type member struct {
	name string
	data []byte
	mode fs.FileMode
}

type bundleFiles []member

func readBundle(t *testing.T, path string) bundleFiles {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var out bundleFiles
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{name: f.Name, data: b, mode: f.Mode()})
	}
	return out
}

func (b bundleFiles) write(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for _, m := range b {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		h.SetMode(m.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(m.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func (b bundleFiles) get(name string) []byte {
	for _, m := range b {
		if m.name == name {
			return m.data
		}
	}
	return nil
}

func (b bundleFiles) set(name string, data []byte) bundleFiles {
	out := slices.Clone(b)
	for i := range out {
		if out[i].name == name {
			out[i].data = data
			return out
		}
	}
	return append(out, member{name: name, data: data, mode: 0o644})
}

func (b bundleFiles) remove(name string) bundleFiles {
	return slices.DeleteFunc(slices.Clone(b), func(m member) bool { return m.name == name })
}

// resign rewrites MANIFEST to match the other members and signs it with s: what an attacker
// with a key (theirs, or a leaked one) would do to make a changed bundle self-consistent.
func (b bundleFiles) resign(t *testing.T, s note.Signer) bundleFiles {
	t.Helper()
	n, err := note.Open(b.get(verify.ManifestName), note.VerifierList())
	var unv *note.UnverifiedNoteError
	if !errors.As(err, &unv) {
		t.Fatalf("manifest: %v", err)
	}
	n = unv.Note
	m, err := verify.ParseManifest(n.Text)
	if err != nil {
		t.Fatal(err)
	}
	m.Files = nil
	for _, x := range b {
		if x.name != verify.ManifestName {
			m.Files = append(m.Files, verify.ManifestFile{Path: x.name, Size: int64(len(x.data)), SHA256: sha256.Sum256(x.data)})
		}
	}
	slices.SortFunc(m.Files, func(a, b verify.ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	signed, err := m.Sign(s)
	if err != nil {
		t.Fatal(err)
	}
	return b.set(verify.ManifestName, signed)
}

func otherSigner(t *testing.T) note.Signer {
	skey, _, err := note.GenerateKey(rand.Reader, rigOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// lines and setLines edit an NDJSON or CSV member line by line.
func lines(b []byte) []string { return strings.SplitAfter(string(b), "\n") }

func setLine(b []byte, i int, line string) []byte {
	l := lines(b)
	l[i] = line
	return []byte(strings.Join(l, ""))
}

func deleteLine(b []byte, i int) []byte {
	l := lines(b)
	return []byte(strings.Join(append(l[:i:i], l[i+1:]...), ""))
}

// baseBundle exports the first week of June once for every tamper case.
func baseBundle(t *testing.T) (bundleFiles, *rig) {
	t.Helper()
	r := getRig(t)
	req := june(KindEUAIAct, "acme-bank/credit-copilot")
	req.To = req.From.AddDate(0, 0, 7)
	dir := filepath.Join(t.TempDir(), "base")
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "exp-tamper", RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, res.Bundle)
	if _, err := verify.VerifyBundle(path, r.Verifier); err != nil {
		t.Fatalf("pristine bundle: %v", err)
	}
	return readBundle(t, path), r
}

// verifyTampered writes b and verifies it; it fails the test unless verification fails with a
// problem of code on file (a prefix match, so "records/x.ndjson" matches "records/x.ndjson:3").
func verifyTampered(t *testing.T, b bundleFiles, v note.Verifier, code, file string) *verify.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tampered.zip")
	b.write(t, path)
	rep, err := verify.VerifyBundle(path, v)
	if err == nil || rep.OK() {
		t.Fatalf("tampering not detected (want %s on %s)", code, file)
	}
	if !errors.Is(err, verify.ErrBundleInvalid) {
		t.Fatalf("error %v does not match verify.ErrBundleInvalid", err)
	}
	for _, p := range rep.Problems {
		if p.Code == code && strings.HasPrefix(p.File, file) {
			return rep
		}
	}
	t.Fatalf("want a %s problem on %q; got:\n%s", code, file, problemList(rep))
	return nil
}

func problemList(rep *verify.Report) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}

func hasCode(rep *verify.Report, code string) bool {
	return slices.ContainsFunc(rep.Problems, func(p verify.Problem) bool { return p.Code == code })
}

func TestTamperAnyFileByte(t *testing.T) {
	base, r := baseBundle(t)
	names := 0
	for _, m := range base {
		if m.name == verify.ManifestName || len(m.data) == 0 {
			continue
		}
		names++
		t.Run(m.name, func(t *testing.T) {
			data := bytes.Clone(m.data)
			i := len(data) / 2
			// A digit becomes another digit, a letter another letter: the file still parses, so
			// only the hash can catch it.
			switch c := data[i]; {
			case c >= '0' && c <= '8', c >= 'a' && c <= 'y', c >= 'A' && c <= 'Y':
				data[i] = c + 1
			default:
				data[i] = c ^ 1
			}
			verifyTampered(t, base.set(m.name, data), r.Verifier, verify.ProblemFileChanged, m.name)
		})
	}
	if names < 15 {
		t.Fatalf("only %d files in the bundle", names)
	}
}

func TestTamperCases(t *testing.T) {
	base, r := baseBundle(t)
	v := r.Verifier
	recFile := "records/records-00000.ndjson"
	recLines := lines(base.get(recFile))
	var third verify.EvidenceLine
	if err := json.Unmarshal([]byte(recLines[2]), &third); err != nil {
		t.Fatal(err)
	}

	t.Run("manifest byte", func(t *testing.T) {
		m := bytes.Replace(base.get(verify.ManifestName), []byte("tenant acme-bank"), []byte("tenant acme-bank-2"), 1)
		verifyTampered(t, base.set(verify.ManifestName, m), v, verify.ProblemManifestSignature, verify.ManifestName)
	})
	t.Run("manifest re-signed by another key", func(t *testing.T) {
		b := base.set("report/report.html", []byte("<p>nothing to see</p>")).resign(t, otherSigner(t))
		rep := verifyTampered(t, b, v, verify.ProblemManifestSignature, verify.ManifestName)
		if hasCode(rep, verify.ProblemFileChanged) {
			t.Errorf("the forged manifest matches the files; only its signature should fail:\n%s", problemList(rep))
		}
	})
	t.Run("removed record", func(t *testing.T) {
		b := base.set(recFile, deleteLine(base.get(recFile), 2))
		rep := verifyTampered(t, b, v, verify.ProblemRecordMissing, "report/decisions.csv")
		for _, c := range []string{verify.ProblemFileChanged, verify.ProblemRecordCount} {
			if !hasCode(rep, c) {
				t.Errorf("no %s problem:\n%s", c, problemList(rep))
			}
		}
		if !strings.Contains(problemList(rep), third.ID) {
			t.Errorf("the removed record %s is not named:\n%s", third.ID, problemList(rep))
		}
	})
	t.Run("removed record, manifest re-signed with the service key", func(t *testing.T) {
		// Even a bundle re-signed with the real key (a buggy or compromised service) cannot
		// drop a record its own tables cite.
		b := base.set(recFile, deleteLine(base.get(recFile), 2)).resign(t, r.Signer)
		verifyTampered(t, b, v, verify.ProblemRecordMissing, "report/decisions.csv")
	})
	t.Run("removed file", func(t *testing.T) {
		verifyTampered(t, base.remove("report/uses.csv"), v, verify.ProblemFileMissing, "report/uses.csv")
	})
	t.Run("removed records file", func(t *testing.T) {
		rep := verifyTampered(t, base.remove(recFile), v, verify.ProblemFileMissing, recFile)
		if !hasCode(rep, verify.ProblemRecordMissing) {
			t.Errorf("cited records not reported missing:\n%s", problemList(rep))
		}
	})
	t.Run("extra file", func(t *testing.T) {
		verifyTampered(t, base.set("report/notes.txt", []byte("added later")), v, verify.ProblemFileExtra, "report/notes.txt")
	})
	t.Run("forged checkpoint", func(t *testing.T) {
		// Same origin, same size and root, signed by a key that is not the log's.
		cp := base.get(verify.CheckpointName)
		text := noteText(cp)
		forged, err := note.Sign(&note.Note{Text: text}, otherSigner(t))
		if err != nil {
			t.Fatal(err)
		}
		verifyTampered(t, base.set(verify.CheckpointName, forged), v, verify.ProblemCheckpoint, verify.CheckpointName)
		verifyTampered(t, base.set(verify.CheckpointName, forged).resign(t, r.Signer), v, verify.ProblemCheckpoint, verify.CheckpointName)
	})
	t.Run("checkpoint of another size", func(t *testing.T) {
		// A genuine checkpoint, but not the one the manifest and proofs are for.
		other := newRig(t, r.Recs[:10])
		cp, err := other.Log.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b := base.set(verify.CheckpointName, cp.Note).resign(t, r.Signer)
		verifyTampered(t, b, other.Verifier, verify.ProblemManifestSignature, verify.ManifestName)
		verifyTampered(t, b, v, verify.ProblemCheckpoint, verify.CheckpointName)
	})
	t.Run("inclusion proof", func(t *testing.T) {
		var ev verify.EvidenceLine
		json.Unmarshal([]byte(recLines[2]), &ev)
		ev.Proof[0][0] ^= 0xff
		line, _ := json.Marshal(ev)
		b := base.set(recFile, setLine(base.get(recFile), 2, string(line)+"\n")).resign(t, r.Signer)
		rep := verifyTampered(t, b, v, verify.ProblemRecordInclusion, recFile+":3")
		if len(rep.Problems) != 1 {
			t.Errorf("want only the proof to fail:\n%s", problemList(rep))
		}
	})
	t.Run("altered record entry", func(t *testing.T) {
		var ev verify.EvidenceLine
		json.Unmarshal([]byte(recLines[2]), &ev)
		ev.Entry = strings.Replace(ev.Entry, `"effect":"`, `"effect":"x`, 1)
		line, _ := json.Marshal(ev)
		b := base.set(recFile, setLine(base.get(recFile), 2, string(line)+"\n")).resign(t, r.Signer)
		verifyTampered(t, b, v, verify.ProblemRecordInvalid, recFile+":3")
	})
	t.Run("record of another tenant", func(t *testing.T) {
		// A genuine logged record with a valid proof, but not the tenant's: an export must never
		// carry another tenant's data.
		var foreign lineage.Record
		var idx uint64
		for i, rec := range r.Recs {
			if rec.Tenant != "acme-bank" {
				foreign, idx = rec, uint64(i)
				break
			}
		}
		cp, _ := ledger.OpenCheckpoint(base.get(verify.CheckpointName), v)
		entries, err := r.Log.Entries(context.Background(), idx, 1, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := r.Log.InclusionProof(context.Background(), idx, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(verify.EvidenceLine{Index: idx, ID: foreign.ID, Entry: string(entries[0]), Proof: proof})
		recs := base.get(recFile)
		b := base.set(recFile, append([]byte(string(line)+"\n"), recs...)).resign(t, r.Signer)
		var first verify.EvidenceLine
		json.Unmarshal([]byte(recLines[0]), &first)
		// The rig's data is fixed: its first foreign record precedes the export's first, so the
		// prepended line keeps log order and the scope check is what fails.
		if idx >= first.Index {
			t.Fatalf("fixture changed: first foreign record at %d, export starts at %d", idx, first.Index)
		}
		verifyTampered(t, b, v, verify.ProblemRecordScope, recFile+":1")
	})
	t.Run("citation mismatch", func(t *testing.T) {
		csvb := base.get("report/decisions.csv")
		l := lines(csvb)
		row := 0 // the first row citing an allow; turn it into a deny
		for i := 1; i < len(l) && row == 0; i++ {
			if strings.Contains(l[i], ",allow,") {
				row = i
			}
		}
		if row == 0 {
			t.Fatal("fixture changed: no decision row cites an allow")
		}
		l[row] = strings.Replace(l[row], ",allow,", ",deny,", 1)
		b := base.set("report/decisions.csv", []byte(strings.Join(l, ""))).resign(t, r.Signer)
		verifyTampered(t, b, v, verify.ProblemCitationMismatch, fmt.Sprintf("report/decisions.csv row %d", row+1))
	})
	t.Run("duplicated record line", func(t *testing.T) {
		b := base.set(recFile, setLine(base.get(recFile), 3, recLines[2])).resign(t, r.Signer)
		verifyTampered(t, b, v, verify.ProblemRecordOrder, recFile+":4")
	})
	t.Run("wrong key", func(t *testing.T) {
		_, vkey, _ := note.GenerateKey(rand.Reader, "lineage.test/other")
		ov, _ := note.NewVerifier(vkey)
		rep := verifyTampered(t, base, ov, verify.ProblemManifestSignature, verify.ManifestName)
		if !hasCode(rep, verify.ProblemCheckpoint) {
			t.Errorf("checkpoint accepted with the wrong key:\n%s", problemList(rep))
		}
	})
}

func TestVerifyRefusesUnsafeArchives(t *testing.T) {
	base, r := baseBundle(t)
	v := r.Verifier
	for _, name := range []string{"../evil.txt", "/etc/passwd", `report\..\x`, "report/../../x", "./MANIFEST", "report//x", "a b"} {
		t.Run("name "+name, func(t *testing.T) {
			b := append(slices.Clone(base), member{name: name, data: []byte("x"), mode: 0o644})
			verifyTampered(t, b, v, verify.ProblemUnsafeEntry, "")
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		b := append(slices.Clone(base), member{name: "report/report.html", data: []byte("<p>second copy</p>"), mode: 0o644})
		verifyTampered(t, b, v, verify.ProblemDuplicateEntry, "report/report.html")
	})
	t.Run("symlink", func(t *testing.T) {
		b := slices.Clone(base)
		for i := range b {
			if b[i].name == "report/report.html" {
				b[i] = member{name: b[i].name, data: []byte("/etc/passwd"), mode: fs.ModeSymlink | 0o777}
			}
		}
		verifyTampered(t, b, v, verify.ProblemUnsafeEntry, "report/report.html")
	})
	t.Run("directory", func(t *testing.T) {
		b := append(slices.Clone(base), member{name: "report/sub", mode: fs.ModeDir | 0o755})
		verifyTampered(t, b, v, verify.ProblemUnsafeEntry, "report/sub")
	})
	t.Run("declared bomb", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bomb.zip")
		f, _ := os.Create(path)
		zw := zip.NewWriter(f)
		for _, m := range base {
			w, _ := zw.Create(m.name)
			w.Write(m.data)
		}
		var raw bytes.Buffer
		fw, _ := flate.NewWriter(&raw, flate.BestCompression)
		fw.Write(make([]byte, 1<<20))
		fw.Close()
		w, err := zw.CreateRaw(&zip.FileHeader{Name: "records/bomb.ndjson", Method: zip.Deflate,
			CompressedSize64: uint64(raw.Len()), UncompressedSize64: 1 << 40, CRC32: crc32.ChecksumIEEE(nil)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(raw.Bytes())
		zw.Close()
		f.Close()
		rep, err := verify.VerifyBundle(path, v)
		if err == nil || !hasCode(rep, verify.ProblemUnsafeEntry) {
			t.Fatalf("bomb: %v\n%s", err, problemList(rep))
		}
	})
	t.Run("not a zip", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "x.zip")
		os.WriteFile(path, []byte("PK\x03\x04 this is not really a zip"), 0o644)
		if rep, err := verify.VerifyBundle(path, v); err == nil || !hasCode(rep, verify.ProblemArchive) {
			t.Fatalf("not a zip: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "t.zip")
		base.write(t, path)
		b, _ := os.ReadFile(path)
		os.WriteFile(path, b[:len(b)/2], 0o644)
		if rep, err := verify.VerifyBundle(path, v); err == nil || !hasCode(rep, verify.ProblemArchive) {
			t.Fatalf("truncated: %v", err)
		}
	})
	t.Run("flipped archive byte", func(t *testing.T) {
		// A raw bit flip inside compressed data: the member no longer inflates, or hashes
		// differently; either way the file is named.
		path := filepath.Join(t.TempDir(), "f.zip")
		base.write(t, path)
		b, _ := os.ReadFile(path)
		zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		var target *zip.File
		for _, f := range zr.File {
			if f.Name == "report/report.json" {
				target = f
			}
		}
		off, _ := target.DataOffset()
		b[off+int64(target.CompressedSize64)/2] ^= 0x10
		os.WriteFile(path, b, 0o644)
		rep, err := verify.VerifyBundle(path, v)
		if err == nil {
			t.Fatal("bit flip not detected")
		}
		named := slices.ContainsFunc(rep.Problems, func(p verify.Problem) bool { return p.File == "report/report.json" })
		if !named {
			t.Fatalf("bit flip not attributed to report/report.json:\n%s", problemList(rep))
		}
	})
}

// FuzzVerifyBundle feeds arbitrary bytes (seeded with a real bundle and its members) to the
// verifier: it may refuse them, never panic, and never accept a changed archive.
func FuzzVerifyBundle(f *testing.F) {
	r := newRig(f, realistic()[:60])
	req := Request{Kind: KindFannieMae, Tenant: "acme-bank", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := filepath.Join(f.TempDir(), "seed")
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "exp-fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, res.Bundle))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("PK\x05\x06" + strings.Repeat("\x00", 18)))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "b.zip")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := verify.VerifyBundle(path, r.Verifier)
		if err == nil && !bytes.Equal(b, good) && rep.Records > 0 {
			// Only re-packings of the same members may pass; anything accepted must hold the
			// same manifest as the genuine bundle.
			if rep.Manifest == nil || rep.Manifest.ExportID != "exp-fuzz" {
				t.Fatalf("a different bundle verified: %+v", rep.Manifest)
			}
		}
	})
}

// realBundle exports the first week of June, as baseBundle does, and returns the archive's
// bytes as the exporter wrote them.
func realBundle(t *testing.T) ([]byte, *rig) {
	t.Helper()
	r := getRig(t)
	req := june(KindEUAIAct, "acme-bank/credit-copilot")
	req.To = req.From.AddDate(0, 0, 7)
	dir := filepath.Join(t.TempDir(), "real")
	res, err := testExporter(r).Export(context.Background(), req, dir, Run{ID: "exp-layout", RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, res.Bundle))
	if err != nil {
		t.Fatal(err)
	}
	return b, r
}

// TestVerifyRefusesLayoutForgeries builds, from a real bundle, archives in which archive/zip
// (and so the central directory) still lists exactly the genuine members, while a streaming
// reader (Java's ZipInputStream) shows a forged report/report.html; each must fail with an
// archive-layout problem that says what is wrong.
func TestVerifyRefusesLayoutForgeries(t *testing.T) {
	good, r := realBundle(t)
	forgedHTML := []byte("<h1>All decisions were reviewed.</h1>")
	forged := ziptest.ForgedMember("report/report.html", forgedHTML)
	genuine, err := ziptest.StreamMembers(good)
	if err != nil || len(genuine) < 15 {
		t.Fatalf("the real bundle does not stream: %d members, %v", len(genuine), err)
	}
	var genuineHTML []byte
	for _, m := range genuine {
		if m.Name == "report/report.html" {
			genuineHTML = m.Data
		}
	}
	for _, tc := range []struct {
		name, file, want string
		b                []byte
	}{
		{"forged member before the central directory", "", `bytes before the central directory belong to no member the central directory lists: they hold an unlisted member "report/report.html"`,
			ziptest.InsertBeforeDirectory(t, good, forged)},
		{"forged member prepended", "", `bytes before member "MANIFEST" belong to no member the central directory lists: they hold an unlisted member "report/report.html"`,
			ziptest.PrependMember(t, good, forged)},
		{"member renamed in its local header", "report/report.json", `local header: names the member "report/report.html"; the central directory names it "report/report.json"`,
			ziptest.RenameLocal(t, good, "report/report.json", "report/report.html")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The attack is real: archive/zip sees the genuine members, a streaming reader the
			// forged report.
			zr, err := zip.NewReader(bytes.NewReader(tc.b), int64(len(tc.b)))
			if err != nil || len(zr.File) != len(genuine) {
				t.Fatalf("archive/zip: %v", err)
			}
			ms, _ := ziptest.StreamMembers(tc.b)
			shown := slices.ContainsFunc(ms, func(m ziptest.Streamed) bool {
				return m.Name == "report/report.html" && !bytes.Equal(m.Data, genuineHTML)
			})
			if !shown {
				t.Fatalf("a streaming reader does not show the forgery: %q", ziptest.StreamedNames(ms))
			}
			path := filepath.Join(t.TempDir(), "forged.zip")
			if err := os.WriteFile(path, tc.b, 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := verify.VerifyBundle(path, r.Verifier)
			if err == nil || !errors.Is(err, verify.ErrBundleInvalid) {
				t.Fatalf("forgery verified: %v", err)
			}
			if len(rep.Problems) != 1 || rep.Problems[0].Code != verify.ProblemArchiveLayout || rep.Problems[0].File != tc.file ||
				!strings.Contains(rep.Problems[0].Detail, tc.want) {
				t.Fatalf("want one %s problem on %q saying %q; got:\n%s", verify.ProblemArchiveLayout, tc.file, tc.want, problemList(rep))
			}
		})
	}
	t.Run("data hidden after a DEFLATE stream", func(t *testing.T) {
		// The layout is exact, but report.html's compressed size also covers a forged member
		// after the end of its DEFLATE stream: archive/zip stops at the stream's end.
		b := ziptest.HideAfterStream(t, good, "report/report.html", forged)
		path := filepath.Join(t.TempDir(), "hidden.zip")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := verify.VerifyBundle(path, r.Verifier)
		if err == nil {
			t.Fatal("hidden data verified")
		}
		if !slices.ContainsFunc(rep.Problems, func(p verify.Problem) bool {
			return p.Code == verify.ProblemFileUnreadable && p.File == "report/report.html" && strings.Contains(p.Detail, "follow the end of its DEFLATE stream")
		}) {
			t.Fatalf("hidden data not reported on report/report.html:\n%s", problemList(rep))
		}
	})
	t.Run("comment and trailing bytes", func(t *testing.T) {
		withComment := slices.Concat(good, []byte("see attached"))
		binary.LittleEndian.PutUint16(withComment[len(good)-2:], 12)
		for _, tc := range []struct {
			b    []byte
			want string
		}{
			{withComment, "the archive has a 12-byte comment"},
			{slices.Concat(good, []byte("PK\x03\x04 more")), "9 bytes follow the end-of-central-directory record"},
		} {
			b, want := tc.b, tc.want
			path := filepath.Join(t.TempDir(), "x.zip")
			os.WriteFile(path, b, 0o644)
			rep, err := verify.VerifyBundle(path, r.Verifier)
			if err == nil || !hasCode(rep, verify.ProblemArchiveLayout) || !strings.Contains(problemList(rep), want) {
				t.Fatalf("want %q; got %v\n%s", want, err, problemList(rep))
			}
		}
	})
}

// noteText returns the text part of a signed note (as verify/bundle.go's noteText does).
func noteText(raw []byte) string {
	if i := bytes.LastIndex(raw, []byte("\n\n")); i >= 0 {
		return string(raw[:i+1])
	}
	return string(raw)
}
