package verify

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

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

// zipEntry is a central directory entry of a test archive.
type zipEntry struct {
	name   string
	cdOff  int // where the entry starts
	offset int // its local header's offset
}

// zipEntries lists the central directory of b (no zip64, no comment).
func zipEntries(t testing.TB, b []byte) (cdOff int, entries []zipEntry) {
	t.Helper()
	eocd := len(b) - endLen
	if le32(b[eocd:]) != sigEnd {
		t.Fatal("no end record")
	}
	cdOff = int(le32(b[eocd+16:]))
	for p := cdOff; p < eocd && le32(b[p:]) == sigCentral; {
		n, x, c := int(le16(b[p+28:])), int(le16(b[p+30:])), int(le16(b[p+32:]))
		entries = append(entries, zipEntry{name: string(b[p+centralLen : p+centralLen+n]), cdOff: p, offset: int(le32(b[p+42:]))})
		p += centralLen + n + x + c
	}
	return cdOff, entries
}

func entryNamed(t testing.TB, entries []zipEntry, name string) zipEntry {
	t.Helper()
	for _, e := range entries {
		if e.name == name {
			return e
		}
	}
	t.Fatalf("no member %s", name)
	return zipEntry{}
}

// forgedMember is a stored member with its sizes in its local header: what an attacker adds.
func forgedMember(name string, data []byte) []byte {
	h := make([]byte, localLen, localLen+len(name)+len(data))
	binary.LittleEndian.PutUint32(h[0:], sigLocal)
	binary.LittleEndian.PutUint16(h[4:], 20)
	binary.LittleEndian.PutUint32(h[14:], crc32.ChecksumIEEE(data))
	binary.LittleEndian.PutUint32(h[18:], uint32(len(data)))
	binary.LittleEndian.PutUint32(h[22:], uint32(len(data)))
	binary.LittleEndian.PutUint16(h[26:], uint16(len(name)))
	return append(append(h, name...), data...)
}

func addU32(b []byte, off, n int) {
	binary.LittleEndian.PutUint32(b[off:], le32(b[off:])+uint32(n))
}

// insertBeforeDirectory puts member between the last member and the central directory and
// moves the end record's directory offset past it: archive/zip lists the same members.
func insertBeforeDirectory(t testing.TB, b, member []byte) []byte {
	cdOff, _ := zipEntries(t, b)
	out := slices.Concat(b[:cdOff], member, b[cdOff:])
	addU32(out, len(out)-endLen+16, len(member))
	return out
}

// prependMember puts member at offset 0 and shifts every offset the archive records, so the
// archive is self-consistent for archive/zip.
func prependMember(t testing.TB, b, member []byte) []byte {
	_, entries := zipEntries(t, b)
	out := slices.Concat(member, b)
	for _, e := range entries {
		addU32(out, len(member)+e.cdOff+42, len(member))
	}
	addU32(out, len(out)-endLen+16, len(member))
	return out
}

// renameLocal renames a member in its local header only (same length).
func renameLocal(t testing.TB, b []byte, from, to string) []byte {
	t.Helper()
	if len(from) != len(to) {
		t.Fatal("names of different lengths")
	}
	_, entries := zipEntries(t, b)
	e := entryNamed(t, entries, from)
	out := bytes.Clone(b)
	if string(out[e.offset+localLen:e.offset+localLen+len(from)]) != from {
		t.Fatal("local name not found")
	}
	copy(out[e.offset+localLen:], to)
	return out
}

// streamed is a member as a streaming reader (Java's ZipInputStream) sees it.
type streamed struct {
	name string
	data []byte
}

// streamMembers reads b as a streaming reader does: local header after local header from
// offset 0, never looking at the central directory; a DEFLATE member with a data descriptor
// ends where its DEFLATE stream ends. It stops at the first thing that is not a local header.
func streamMembers(b []byte) ([]streamed, error) {
	var out []streamed
	pos := 0
	for pos+localLen <= len(b) && le32(b[pos:]) == sigLocal {
		flags, method := le16(b[pos+6:]), le16(b[pos+8:])
		csize := int(le32(b[pos+18:]))
		n, x := int(le16(b[pos+26:])), int(le16(b[pos+28:]))
		data := pos + localLen + n + x
		if data > len(b) {
			return out, errors.New("truncated local header")
		}
		m := streamed{name: string(b[pos+localLen : pos+localLen+n])}
		switch {
		case method == zip.Deflate:
			br := bytes.NewReader(b[data:]) // an io.ByteReader: flate reads no further than the stream
			content, err := io.ReadAll(io.LimitReader(flate.NewReader(br), 1<<24))
			if err != nil {
				return out, fmt.Errorf("%s: %w", m.name, err)
			}
			used := len(b) - data - br.Len()
			if flags&flagDescriptor == 0 && used != csize {
				return out, fmt.Errorf("%s: stream of %d bytes, header says %d", m.name, used, csize)
			}
			m.data, pos = content, data+used
			if flags&flagDescriptor != 0 {
				if pos+descriptorLen > len(b) || le32(b[pos:]) != sigDescriptor {
					return out, fmt.Errorf("%s: no data descriptor", m.name)
				}
				if d := int(le32(b[pos+8:])); d != used {
					return out, fmt.Errorf("%s: descriptor says %d bytes, stream has %d", m.name, d, used)
				}
				pos += descriptorLen
			}
		case method == zip.Store && flags&flagDescriptor == 0 && data+csize <= len(b):
			m.data, pos = b[data:data+csize], data+csize
		default:
			return out, fmt.Errorf("%s: cannot stream", m.name)
		}
		out = append(out, m)
	}
	return out, nil
}

func streamedNames(ms []streamed) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.name)
	}
	return names
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
	cdOff, entries := zipEntries(t, good)
	forged := forgedMember("report/report.html", []byte("<h1>forged</h1>"))
	patch := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	html := entryNamed(t, entries, "report/report.html")
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"member before the central directory", insertBeforeDirectory(t, good, forged), `before the central directory belong to no member the central directory lists: they hold an unlisted member "report/report.html"`},
		{"member prepended, offsets shifted", prependMember(t, good, forged), `before member "MANIFEST" belong to no member`},
		{"member prepended, offsets kept", slices.Concat(forged, good), "does not end where the end record starts"},
		{"junk before the central directory", insertBeforeDirectory(t, good, []byte("junk")), "4 bytes before the central directory belong to no member"},
		{"renamed in local header", renameLocal(t, good, "report/report.json", "report/report.html"), `names the member "report/report.html"; the central directory names it "report/report.json"`},
		{"archive comment", func() []byte {
			b := slices.Concat(good, []byte("hi"))
			binary.LittleEndian.PutUint16(b[len(good)-2:], 2)
			return b
		}(), "2-byte comment"},
		{"trailing bytes", slices.Concat(good, []byte("trailing")), "8 bytes follow the end-of-central-directory record"},
		{"local flags", patch(html.offset+6, 0x08, 0x08), "local header: flags 0x0808"},
		{"local method", patch(html.offset+8, 0), "local header: compression method 0"},
		{"local time", patch(html.offset+10, 1), "modification time"},
		{"local CRC with descriptor", patch(html.offset+14, 1), "CRC and sizes are set"},
		{"descriptor CRC", func() []byte {
			_, next := entries[2], entries[3]
			return patch(next.offset-descriptorLen+4, 0xde, 0xad)
		}(), "the data descriptor says CRC"},
		{"descriptor signature", patch(entries[3].offset-descriptorLen, 'X'), "no data descriptor"},
		{"local extra", patch(html.offset+localLen+len(html.name), 0x54, 0x56), "extra fields differ"},
		{"central offset into the middle", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[html.cdOff+42:], uint32(html.offset-1))
			return b
		}(), "inside the member before it"},
		{"central offset past a gap", func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint32(b[html.cdOff+42:], uint32(html.offset+1))
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
	b := hideAfterStream(t, good, "report/report.html", forgedMember("report/report.html", []byte("<h1>forged</h1>")))
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

// hideAfterStream rewrites archive b with tail appended to the compressed data of member
// name, its compressed size grown to match: what archive/zip reads is unchanged.
func hideAfterStream(t testing.TB, b []byte, name string, tail []byte) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, zf := range zr.File {
		if zf.Name != name {
			if err := zw.Copy(zf); err != nil {
				t.Fatal(err)
			}
			continue
		}
		raw, err := zf.OpenRaw()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(raw)
		h := zf.FileHeader
		h.CompressedSize64 += uint64(len(tail))
		w, err := zw.CreateRaw(&h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Write(tail)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzZipLayout feeds arbitrary bytes to checkZipLayout: it must never panic, must explain a
// refusal with a *LayoutError, and an archive it accepts (whose members read cleanly through
// openMember) must show a streaming reader exactly the members, names and contents
// archive/zip shows.
func FuzzZipLayout(f *testing.F) {
	good := smallZip(f, nil, "MANIFEST", "checkpoint", "report/report.html")
	forged := forgedMember("report/report.html", []byte("<h1>forged</h1>"))
	f.Add(good)
	f.Add(insertBeforeDirectory(f, good, forged))
	f.Add(prependMember(f, good, forged))
	f.Add(renameLocal(f, good, "checkpoint", "checkpoinT"))
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
		var want []streamed
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
			want = append(want, streamed{zf.Name, data})
		}
		got, err := streamMembers(b)
		if err != nil {
			t.Fatalf("accepted, but a streaming reader fails: %v", err)
		}
		if !slices.EqualFunc(got, want, func(a, b streamed) bool { return a.name == b.name && bytes.Equal(a.data, b.data) }) {
			t.Fatalf("accepted, but a streaming reader shows %q; archive/zip %q", streamedNames(got), streamedNames(want))
		}
	})
}
