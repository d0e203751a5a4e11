package verify

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/internal/ziptest"
)

// The forged archives (a member before the central directory or at offset 0, a name changed in
// a local header, data hidden after a DEFLATE stream) and the streaming reader that shows what
// they hide come from internal/ziptest, which the bundle tests of exporters/report use too.

// checkZipBytes runs checkZipLayout on an archive held in memory.
func checkZipBytes(b []byte) error {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fmt.Errorf("archive/zip: %w", err)
	}
	return checkZipLayout(bytes.NewReader(b), int64(len(b)), zr.File)
}

// smallZip writes an archive the way writeBundle (exporters/report/bundle.go) does: DEFLATE, data
// descriptors, an extended-timestamp extra field.
func smallZip(t testing.TB, edit func(*zip.FileHeader), names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i, name := range names {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
		h.SetMode(0o644)
		if edit != nil {
			edit(h)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(w, "member %d: %s\n", i, strings.Repeat(name, 20))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestZipLayoutAcceptsWriterOutput(t *testing.T) {
	for _, b := range [][]byte{
		smallZip(t, nil, "MANIFEST", "checkpoint", "report/report.html"),
		smallZip(t, nil, "x"),
		smallZip(t, nil),
	} {
		if err := checkZipBytes(b); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestZipLayoutAcceptsZip64 checks an archive whose member count needs the zip64 end
// records, written by archive/zip as a bundle of 100,000 files would be.
func TestZipLayoutAcceptsZip64(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	empty := []byte{0x03, 0x00} // an empty DEFLATE stream
	for i := range 1 << 16 {
		w, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("r/%05d", i), Method: zip.Deflate,
			CompressedSize64: uint64(len(empty)), CRC32: crc32.ChecksumIEEE(nil)})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(empty)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if le32(b[len(b)-endLen-locator64Len:]) != sigLocator64 {
		t.Fatal("archive/zip wrote no zip64 end records")
	}
	if err := checkZipBytes(b); err != nil {
		t.Fatal(err)
	}
	// The end record stops deferring to the zip64 record: readers would disagree.
	c := bytes.Clone(b)
	binary.LittleEndian.PutUint16(c[len(c)-endLen+10:], 0)
	binary.LittleEndian.PutUint16(c[len(c)-endLen+8:], 0)
	wantLayoutErr(t, c, "does not defer to it")
}

func wantLayoutErr(t *testing.T, b []byte, want string) {
	t.Helper()
	err := checkZipBytes(b)
	var le *LayoutError
	if !errors.As(err, &le) {
		t.Fatalf("want a layout error containing %q; got %v", want, err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("want an error containing %q; got %v", want, err)
	}
}

func TestZipLayoutRefuses(t *testing.T) {
	names := []string{"MANIFEST", "checkpoint", "report/report.html", "report/report.json"}
	good := smallZip(t, nil, names...)
	cdOff, entries := ziptest.Entries(t, good)
	forged := ziptest.ForgedMember("report/report.html", []byte("<h1>forged</h1>"))
	patch := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	html := ziptest.EntryNamed(t, entries, "report/report.html")
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"member before the central directory", ziptest.InsertBeforeDirectory(t, good, forged), `before the central directory belong to no member the central directory lists: they hold an unlisted member "report/report.html"`},
		{"member prepended, offsets shifted", ziptest.PrependMember(t, good, forged), `before member "MANIFEST" belong to no member`},
		{"member prepended, offsets kept", slices.Concat(forged, good), "does not end where the end record starts"},
		{"junk before the central directory", ziptest.InsertBeforeDirectory(t, good, []byte("junk")), "4 bytes before the central directory belong to no member"},
		{"renamed in local header", ziptest.RenameLocal(t, good, "report/report.json", "report/report.html"), `names the member "report/report.html"; the central directory names it "report/report.json"`},
		{"archive comment", func() []byte {
			b := slices.Concat(good, []byte("hi"))
			binary.LittleEndian.PutUint16(b[len(good)-2:], 2)
			return b
		}(), "2-byte comment"},
		{"trailing bytes", slices.Concat(good, []byte("trailing")), "8 bytes follow the end-of-central-directory record"},
		{"local flags", patch(html.Offset+6, 0x08, 0x08), "local header: flags 0x0808"},
		{"local method", patch(html.Offset+8, 0), "local header: compression method 0"},
		{"local time", patch(html.Offset+10, 1), "modification time"},
		{"local CRC with descriptor", patch(html.Offset+14, 1), "CRC and sizes are set"},
		{"descriptor CRC", func() []byte {
			_, next := entries[2], entries[3]
			return patch(next.Offset-descriptorLen+4, 0xde, 0xad)
		}(), "the data descriptor says CRC"},
		{"descriptor signature", patch(entries[3].Offset-descriptorLen, 'X'), "no data descriptor"},
		{"local extra", patch(html.Offset+localLen+len(html.Name), 0x54, 0x56), "extra fields differ"},
		{"central offset into the middle", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[html.CDOff+42:], uint32(html.Offset-1))
			return b
		}(), "inside the member before it"},
		{"central offset past a gap", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[html.CDOff+42:], uint32(html.Offset+1))
			return b
		}(), `1 bytes before member "report/report.html" belong to no member`},
		{"deferring end record without zip64", patch(len(good)-endLen+16, 0xff, 0xff, 0xff, 0xff), "zip64 end record that is not there"},
		{"multi-disk", patch(len(good)-endLen+4, 1), "multi-disk"},
		{"central size field", patch(cdOff+24, 0xff, 0xff, 0xff, 0xff), "0xffffffff with no zip64 field"},
		{"member comment", smallZip(t, func(h *zip.FileHeader) { h.Comment = "c" }, names...), "member comment"},
		{"stored with descriptor", smallZip(t, func(h *zip.FileHeader) { h.Method = zip.Store }, names...), "stored (uncompressed) with a data descriptor"},
		{"duplicate", smallZip(t, nil, "a", "b", "a"), "two members have this name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantLayoutErr(t, tc.b, tc.want)
		})
	}
	// What archive/zip refuses by itself, checkZipLayout refuses too.
	zr, err := zip.NewReader(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkZipLayout(bytes.NewReader(good), int64(len(good)), zr.File[:3]); err == nil || !strings.Contains(err.Error(), "counts 4 members; the central directory lists 3") {
		t.Errorf("member count: %v", err)
	}
	if err := checkZipLayout(bytes.NewReader(good), 2, nil); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("too short: %v", err)
	}
}

// TestOpenMemberRefusesHiddenTail hides a member after the end of another member's DEFLATE
// stream, inside its compressed size: the layout is exact, archive/zip reads the member
// cleanly, a streaming reader shows the hidden one; openMember refuses it.
func TestOpenMemberRefusesHiddenTail(t *testing.T) {
	good := smallZip(t, nil, "MANIFEST", "report/report.html")
	b := ziptest.HideAfterStream(t, good, "report/report.html", ziptest.ForgedMember("report/report.html", []byte("<h1>forged</h1>")))
	if err := checkZipBytes(b); err != nil {
		t.Fatalf("the layout is exact, yet: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		rc, _ := zf.Open()
		if _, err := io.ReadAll(rc); err != nil {
			t.Fatalf("archive/zip: %s: %v", zf.Name, err)
		}
		rc.Close()
		rc, err := openMember(zf)
		if err == nil {
			_, err = io.ReadAll(rc)
			rc.Close()
		}
		if zf.Name == "report/report.html" {
			if err == nil || !strings.Contains(err.Error(), "follow the end of its DEFLATE stream") {
				t.Fatalf("hidden tail: %v", err)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
	}
}

// FuzzZipLayout feeds arbitrary bytes to checkZipLayout: it must never panic, must explain a
// refusal with a *LayoutError, and an archive it accepts (whose members read cleanly through
// openMember) must show a streaming reader exactly the members, names and contents
// archive/zip shows.
func FuzzZipLayout(f *testing.F) {
	good := smallZip(f, nil, "MANIFEST", "checkpoint", "report/report.html")
	forged := ziptest.ForgedMember("report/report.html", []byte("<h1>forged</h1>"))
	f.Add(good)
	f.Add(ziptest.InsertBeforeDirectory(f, good, forged))
	f.Add(ziptest.PrependMember(f, good, forged))
	f.Add(ziptest.RenameLocal(f, good, "checkpoint", "checkpoinT"))
	f.Add(smallZip(f, func(h *zip.FileHeader) { h.Method = zip.Store }, "a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if len(zr.File) > 1000 {
			return
		}
		err = checkZipLayout(bytes.NewReader(b), int64(len(b)), zr.File)
		if err != nil {
			var le *LayoutError
			if !errors.As(err, &le) {
				t.Fatalf("not a *LayoutError: %v", err)
			}
			return
		}
		var want []ziptest.Streamed
		for _, zf := range zr.File {
			rc, err := openMember(zf)
			if err != nil {
				return
			}
			data, err := io.ReadAll(io.LimitReader(rc, 1<<24))
			rc.Close()
			if err != nil {
				return
			}
			want = append(want, ziptest.Streamed{Name: zf.Name, Data: data})
		}
		got, err := ziptest.StreamMembers(b)
		if err != nil {
			t.Fatalf("accepted, but a streaming reader fails: %v", err)
		}
		if !slices.EqualFunc(got, want, func(a, b ziptest.Streamed) bool { return a.Name == b.Name && bytes.Equal(a.Data, b.Data) }) {
			t.Fatalf("accepted, but a streaming reader shows %q; archive/zip %q", ziptest.StreamedNames(got), ziptest.StreamedNames(want))
		}
	})
}
