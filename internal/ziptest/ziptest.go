// Package ziptest forges ZIP archives for tests: it edits a genuine archive the way an attacker
// would (a member slipped in before the central directory or at offset 0, a member renamed in
// its local header only, bytes hidden after a member's DEFLATE stream) and reads an archive as a
// streaming reader does. The layout check it is aimed at is verify/zipcheck.go; its tests
// (verify/zipcheck_test.go) and the bundle tests of the report writer
// (exporters/report/zipforge_test.go, verify_test.go) use it. It handles archives with no zip64
// records and no archive comment, as archive/zip writes them for small test bundles.
package ziptest

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
	"testing"
)

// The few ZIP constants the forgeries use (APPNOTE.TXT 4.3); verify/zipcheck.go has its own.
const (
	sigLocal       = 0x04034b50
	sigCentral     = 0x02014b50
	sigDescriptor  = 0x08074b50
	sigEnd         = 0x06054b50
	localLen       = 30
	centralLen     = 46
	endLen         = 22
	descriptorLen  = 16
	flagDescriptor = 0x0008
)

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// Entry is a central directory entry of a test archive.
type Entry struct {
	Name   string
	CDOff  int // where the entry starts
	Offset int // its local header's offset
}

// Entries lists the central directory of b (no zip64, no comment) and returns where it starts.
func Entries(t testing.TB, b []byte) (cdOff int, entries []Entry) {
	t.Helper()
	eocd := len(b) - endLen
	if le32(b[eocd:]) != sigEnd {
		t.Fatal("no end record")
	}
	cdOff = int(le32(b[eocd+16:]))
	for p := cdOff; p < eocd && le32(b[p:]) == sigCentral; {
		n, x, c := int(le16(b[p+28:])), int(le16(b[p+30:])), int(le16(b[p+32:]))
		entries = append(entries, Entry{Name: string(b[p+centralLen : p+centralLen+n]), CDOff: p, Offset: int(le32(b[p+42:]))})
		p += centralLen + n + x + c
	}
	return cdOff, entries
}

// EntryNamed is the entry of member name; the test fails if there is none.
func EntryNamed(t testing.TB, entries []Entry, name string) Entry {
	t.Helper()
	for _, e := range entries {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("no member %s", name)
	return Entry{}
}

// ForgedMember is a stored member with its sizes in its local header: what an attacker adds.
func ForgedMember(name string, data []byte) []byte {
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

// InsertBeforeDirectory puts member between the last member and the central directory and
// moves the end record's directory offset past it: archive/zip lists the same members.
func InsertBeforeDirectory(t testing.TB, b, member []byte) []byte {
	cdOff, _ := Entries(t, b)
	out := slices.Concat(b[:cdOff], member, b[cdOff:])
	addU32(out, len(out)-endLen+16, len(member))
	return out
}

// PrependMember puts member at offset 0 and shifts every offset the archive records, so the
// archive is self-consistent for archive/zip.
func PrependMember(t testing.TB, b, member []byte) []byte {
	_, entries := Entries(t, b)
	out := slices.Concat(member, b)
	for _, e := range entries {
		addU32(out, len(member)+e.CDOff+42, len(member))
	}
	addU32(out, len(out)-endLen+16, len(member))
	return out
}

// RenameLocal renames a member in its local header only (same length).
func RenameLocal(t testing.TB, b []byte, from, to string) []byte {
	t.Helper()
	if len(from) != len(to) {
		t.Fatal("names of different lengths")
	}
	_, entries := Entries(t, b)
	e := EntryNamed(t, entries, from)
	out := bytes.Clone(b)
	if string(out[e.Offset+localLen:e.Offset+localLen+len(from)]) != from {
		t.Fatal("local name not found")
	}
	copy(out[e.Offset+localLen:], to)
	return out
}

// HideAfterStream rewrites archive b with tail appended to the compressed data of member
// name, its compressed size grown to match: what archive/zip reads is unchanged.
func HideAfterStream(t testing.TB, b []byte, name string, tail []byte) []byte {
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

// Streamed is a member as a streaming reader (Java's ZipInputStream) sees it.
type Streamed struct {
	Name string
	Data []byte
}

// StreamMembers reads b as a streaming reader does: local header after local header from
// offset 0, never looking at the central directory; a DEFLATE member with a data descriptor
// ends where its DEFLATE stream ends. It stops at the first thing that is not a local header.
func StreamMembers(b []byte) ([]Streamed, error) {
	var out []Streamed
	pos := 0
	for pos+localLen <= len(b) && le32(b[pos:]) == sigLocal {
		flags, method := le16(b[pos+6:]), le16(b[pos+8:])
		csize := int(le32(b[pos+18:]))
		n, x := int(le16(b[pos+26:])), int(le16(b[pos+28:]))
		data := pos + localLen + n + x
		if data > len(b) {
			return out, errors.New("truncated local header")
		}
		m := Streamed{Name: string(b[pos+localLen : pos+localLen+n])}
		switch {
		case method == zip.Deflate:
			br := bytes.NewReader(b[data:]) // an io.ByteReader: flate reads no further than the stream
			content, err := io.ReadAll(io.LimitReader(flate.NewReader(br), 1<<24))
			if err != nil {
				return out, fmt.Errorf("%s: %w", m.Name, err)
			}
			used := len(b) - data - br.Len()
			if flags&flagDescriptor == 0 && used != csize {
				return out, fmt.Errorf("%s: stream of %d bytes, header says %d", m.Name, used, csize)
			}
			m.Data, pos = content, data+used
			if flags&flagDescriptor != 0 {
				if pos+descriptorLen > len(b) || le32(b[pos:]) != sigDescriptor {
					return out, fmt.Errorf("%s: no data descriptor", m.Name)
				}
				if d := int(le32(b[pos+8:])); d != used {
					return out, fmt.Errorf("%s: descriptor says %d bytes, stream has %d", m.Name, d, used)
				}
				pos += descriptorLen
			}
		case method == zip.Store && flags&flagDescriptor == 0 && data+csize <= len(b):
			m.Data, pos = b[data:data+csize], data+csize
		default:
			return out, fmt.Errorf("%s: cannot stream", m.Name)
		}
		out = append(out, m)
	}
	return out, nil
}

// StreamedNames lists the names of ms, in order.
func StreamedNames(ms []Streamed) []string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return names
}
