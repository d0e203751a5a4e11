package verify

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// A ZIP archive describes its members twice: once in a local header just before each member's
// data, once in the central directory at the end. archive/zip, and so VerifyBundle
// (verify/bundle.go), reads only the central directory; streaming readers (Java's
// ZipInputStream, many mail scanners, "unzip from a pipe") read only the local headers, from
// the first byte on. An archive whose two views differ shows those tools members the verifier
// never read: a forged report/report.html placed before the central directory or before the
// first member, or a member renamed in its local header only.
//
// checkZipLayout refuses every archive that is not laid out the one way the bundle writer
// (exporters/report/bundle.go, through archive/zip's Writer) lays it out, so that both views are the
// same bytes:
//
//	[local header, name, extra, compressed data, data descriptor]…   from offset 0, no gaps
//	central directory, one entry per member, in the same order
//	[zip64 end record, zip64 locator]                                 only if the counts need it
//	end record, with no archive comment                               ending the file
//
// Everything between offset 0 and the central directory must belong to a listed member, the
// central directory must end where the end record (or zip64 end record) starts, and each local
// header must agree with its central directory entry: name, flags, method, time, CRC and sizes
// (zero in the local header when a data descriptor carries them; then the descriptor must
// carry the same), extra fields. It also refuses archive and member comments (the writer never
// writes one), multi-disk and inconsistent zip64 records, encryption and compression methods
// other than DEFLATE (and STORE without a data descriptor), and duplicate names.
//
// It does not inflate anything: that bytes after the end of a member's DEFLATE stream (inside
// its compressed size) are refused is openMember's job, done while the verifier reads the
// member anyway.

// Record signatures and fixed lengths (APPNOTE.TXT 4.3).
const (
	sigLocal      = 0x04034b50
	sigCentral    = 0x02014b50
	sigDescriptor = 0x08074b50
	sigEnd        = 0x06054b50
	sigEnd64      = 0x06064b50
	sigLocator64  = 0x07064b50

	localLen      = 30
	centralLen    = 46
	endLen        = 22
	end64Len      = 56 // with no extensible data, as archive/zip writes it
	locator64Len  = 20
	descriptorLen = 16 // signature, CRC, 32-bit sizes
	descriptor64  = 24 // signature, CRC, 64-bit sizes

	zip64ExtraID = 0x0001

	flagEncrypted  = 0x0001
	flagDescriptor = 0x0008
	flagUTF8       = 0x0800
	// allowedFlags: data descriptor, UTF-8 names, and DEFLATE's level hint (bits 1-2). Anything
	// else (encryption, patched data, masked local headers…) is refused.
	allowedFlags = flagDescriptor | flagUTF8 | 0x0006

	max16 = 0xffff
	max32 = 0xffffffff
)

// LayoutError says where an archive departs from the strict layout.
type LayoutError struct {
	Member string // the member concerned, as the central directory names it; "" if none
	Offset int64  // where in the archive
	Detail string
}

func (e *LayoutError) Error() string {
	if e.Member != "" {
		return fmt.Sprintf("zip layout: member %q at offset %d: %s", clip(e.Member), e.Offset, e.Detail)
	}
	return fmt.Sprintf("zip layout: offset %d: %s", e.Offset, e.Detail)
}

func layoutErr(member string, off int64, format string, args ...any) error {
	return &LayoutError{Member: member, Offset: off, Detail: fmt.Sprintf(format, args...)}
}

// zipDir is where the end records put the central directory.
type zipDir struct {
	count  uint64
	offset uint64
	size   uint64
	end    int64 // where the central directory must end: the (zip64) end record
}

// checkZipLayout checks the archive r of size bytes, whose members archive/zip read as files
// (zip.Reader.File, in central directory order). It returns a *LayoutError, or an error
// reading r.
func checkZipLayout(r io.ReaderAt, size int64, files []*zip.File) error {
	dir, err := readZipEnd(r, size)
	if err != nil {
		return err
	}
	if dir.size > uint64(dir.end) || dir.offset != uint64(dir.end)-dir.size {
		return layoutErr("", dir.end, "the central directory (offset %d, %d bytes) does not end where the end record starts: bytes were inserted or removed without the offsets matching", dir.offset, dir.size)
	}
	if dir.count != uint64(len(files)) {
		return layoutErr("", dir.end, "the end record counts %d members; the central directory lists %d", dir.count, len(files))
	}
	if dir.count > dir.size/centralLen {
		return layoutErr("", dir.end, "the end record counts %d members, more than a %d-byte central directory holds", dir.count, dir.size)
	}
	cdStart := int64(dir.offset)
	cd := bufio.NewReader(io.NewSectionReader(r, cdStart, int64(dir.size)))
	cdPos := cdStart
	pos := int64(0) // where the next member's local header must start
	seen := make(map[string]struct{}, len(files))
	for i, zf := range files {
		e, n, err := readCentralEntry(cd, cdPos)
		if err != nil {
			return err
		}
		cdPos += n
		if e.name != zf.Name || e.flags != zf.Flags || e.method != zf.Method || e.crc != zf.CRC32 ||
			e.csize != zf.CompressedSize64 || e.usize != zf.UncompressedSize64 {
			return layoutErr(e.name, cdPos-n, "archive/zip reads central directory entry %d differently (as %q)", i, clip(zf.Name))
		}
		if _, dup := seen[e.name]; dup {
			return layoutErr(e.name, cdPos-n, "two members have this name: which one a tool shows is ambiguous")
		}
		seen[e.name] = struct{}{}
		if e.offset != uint64(pos) {
			if e.offset >= uint64(cdStart) {
				return layoutErr(e.name, cdPos-n, "the central directory says the member starts at %d, at or after the central directory (%d)", e.offset, cdStart)
			}
			if e.offset > uint64(pos) {
				return gapErr(r, pos, int64(e.offset), fmt.Sprintf("before member %q", clip(e.name)))
			}
			return layoutErr(e.name, int64(e.offset), "the member starts inside the member before it (which ends at %d): members overlap or are out of order", pos)
		}
		next, err := checkLocal(r, pos, cdStart, e, zf)
		if err != nil {
			return err
		}
		pos = next
	}
	if _, err := cd.ReadByte(); err != io.EOF {
		return layoutErr("", cdPos, "the central directory holds more than its %d entries", len(files))
	}
	if pos != cdStart {
		return gapErr(r, pos, cdStart, "before the central directory")
	}
	return nil
}

// readZipEnd reads the end record (and the zip64 end record it defers to) and says where the
// central directory is.
func readZipEnd(r io.ReaderAt, size int64) (zipDir, error) {
	var dir zipDir
	if size < endLen {
		return dir, layoutErr("", 0, "%d bytes: too short for a ZIP archive", size)
	}
	eocd := size - endLen
	var b [endLen]byte
	if err := readAt(r, b[:], eocd); err != nil {
		return dir, err
	}
	if le32(b[0:]) != sigEnd || le16(b[20:]) != 0 {
		return dir, endTrouble(r, size)
	}
	disk, cdDisk, onDisk, count := le16(b[4:]), le16(b[6:]), le16(b[8:]), le16(b[10:])
	cdSize, cdOffset := le32(b[12:]), le32(b[16:])
	if disk != 0 || cdDisk != 0 || onDisk != count {
		return dir, layoutErr("", eocd, "the end record describes a multi-disk archive")
	}
	dir = zipDir{count: uint64(count), size: uint64(cdSize), offset: uint64(cdOffset), end: eocd}
	deferred := count == max16 || cdSize == max32 || cdOffset == max32
	var loc [locator64Len]byte
	hasLoc := false
	if eocd >= locator64Len {
		if err := readAt(r, loc[:], eocd-locator64Len); err != nil {
			return dir, err
		}
		hasLoc = le32(loc[0:]) == sigLocator64
	}
	if !hasLoc {
		if deferred {
			return dir, layoutErr("", eocd, "the end record defers to a zip64 end record that is not there")
		}
		return dir, nil
	}
	// archive/zip writes the zip64 records only when the counts need them, and then puts the
	// maximum in every field of the end record; readers that ignore zip64 and readers that
	// honour it must not see different directories.
	if count != max16 || cdSize != max32 || cdOffset != max32 {
		return dir, layoutErr("", eocd-locator64Len, "a zip64 locator precedes an end record that does not defer to it: readers disagree on which to use")
	}
	locOff := eocd - locator64Len
	if le32(loc[4:]) != 0 || le32(loc[16:]) != 1 {
		return dir, layoutErr("", locOff, "the zip64 locator describes a multi-disk archive")
	}
	recOff := locOff - end64Len
	if recOff < 0 || le64(loc[8:]) != uint64(recOff) {
		return dir, layoutErr("", locOff, "the zip64 end record is not immediately before its locator")
	}
	var rec [end64Len]byte
	if err := readAt(r, rec[:], recOff); err != nil {
		return dir, err
	}
	if le32(rec[0:]) != sigEnd64 || le64(rec[4:]) != end64Len-12 {
		return dir, layoutErr("", recOff, "not a zip64 end record (or one with extensible data)")
	}
	if le32(rec[16:]) != 0 || le32(rec[20:]) != 0 || le64(rec[24:]) != le64(rec[32:]) {
		return dir, layoutErr("", recOff, "the zip64 end record describes a multi-disk archive")
	}
	dir = zipDir{count: le64(rec[32:]), size: le64(rec[40:]), offset: le64(rec[48:]), end: recOff}
	if dir.count < max16 && dir.size < max32 && dir.offset < max32 {
		return dir, layoutErr("", recOff, "a zip64 end record in an archive that needs none")
	}
	return dir, nil
}

// endTrouble says why the file does not end with a comment-less end record.
func endTrouble(r io.ReaderAt, size int64) error {
	n := min(size, max16+endLen+1024)
	buf := make([]byte, n)
	if err := readAt(r, buf, size-n); err != nil {
		return err
	}
	for p := len(buf) - endLen; p >= 0; p-- {
		if le32(buf[p:]) != sigEnd {
			continue
		}
		off := size - n + int64(p)
		after := size - off - endLen
		if c := int64(le16(buf[p+20:])); c > 0 && c == after {
			return layoutErr("", off, "the archive has a %d-byte comment; bundles carry none", c)
		}
		return layoutErr("", off, "%d bytes follow the end-of-central-directory record", after)
	}
	return layoutErr("", size, "the archive does not end with an end-of-central-directory record")
}

// centralEntry is one central directory entry, with zip64 values applied.
type centralEntry struct {
	name                        string
	flags, method, mtime, mdate uint16
	crc                         uint32
	csize, usize, offset        uint64
	extra                       []byte // the extra fields other than zip64
}

// readCentralEntry reads the entry at cd (offset off in the archive) and returns it with its
// length.
func readCentralEntry(cd *bufio.Reader, off int64) (centralEntry, int64, error) {
	var e centralEntry
	var b [centralLen]byte
	if _, err := io.ReadFull(cd, b[:]); err != nil {
		return e, 0, layoutErr("", off, "the central directory ends inside an entry")
	}
	if le32(b[0:]) != sigCentral {
		return e, 0, layoutErr("", off, "not a central directory entry")
	}
	e.flags, e.method, e.mtime, e.mdate = le16(b[8:]), le16(b[10:]), le16(b[12:]), le16(b[14:])
	e.crc = le32(b[16:])
	csize, usize := le32(b[20:]), le32(b[24:])
	nameLen, extraLen, commentLen := int(le16(b[28:])), int(le16(b[30:])), int(le16(b[32:]))
	disk, offset := le16(b[34:]), le32(b[42:])
	rest := make([]byte, nameLen+extraLen+commentLen)
	if _, err := io.ReadFull(cd, rest); err != nil {
		return e, 0, layoutErr("", off, "the central directory ends inside an entry")
	}
	e.name = string(rest[:nameLen])
	n := int64(centralLen + len(rest))
	fail := func(format string, args ...any) (centralEntry, int64, error) {
		return e, 0, layoutErr(e.name, off, "central directory entry: "+format, args...)
	}
	switch {
	case nameLen == 0:
		return fail("no name")
	case commentLen != 0:
		return fail("a %d-byte member comment; bundles carry none", commentLen)
	case disk != 0:
		return fail("the member is on disk %d of a multi-disk archive", disk)
	}
	if err := checkFlagsMethod(e.flags, e.method); err != "" {
		return fail("%s", err)
	}
	var z64 []byte
	var ok bool
	e.extra, z64, ok = splitExtra(rest[nameLen : nameLen+extraLen])
	if !ok {
		return fail("malformed extra fields")
	}
	// A zip64 field holds, in this order, the uncompressed size, the compressed size and the
	// offset whose 32-bit field is 0xffffffff (APPNOTE.TXT 4.5.3); archive/zip's Writer
	// writes all three whenever it writes one, with both size fields at 0xffffffff.
	e.usize, e.csize, e.offset = uint64(usize), uint64(csize), uint64(offset)
	var need []*uint64
	if usize == max32 {
		need = append(need, &e.usize)
	}
	if csize == max32 {
		need = append(need, &e.csize)
	}
	if offset == max32 {
		need = append(need, &e.offset)
	}
	switch {
	case z64 == nil && len(need) > 0:
		return fail("a size or offset of 0xffffffff with no zip64 field for its value")
	case z64 != nil && len(need) == 0:
		return fail("a zip64 field that no value defers to")
	case len(z64) == 8*len(need):
	case len(z64) == 24 && usize == max32 && csize == max32 && le64(z64[16:]) == uint64(offset):
		// archive/zip's form for a large member below 4 GiB of offset
	default:
		return fail("a %d-byte zip64 field does not match the %d value(s) that defer to it", len(z64), len(need))
	}
	for i, p := range need {
		*p = le64(z64[8*i:])
	}
	if e.method == zip.Store && e.csize != e.usize {
		return fail("stored (uncompressed) but its sizes differ: %d and %d", e.csize, e.usize)
	}
	return e, n, nil
}

// checkFlagsMethod says what is wrong with a member's flags and compression method, or "".
func checkFlagsMethod(flags, method uint16) string {
	switch {
	case flags&flagEncrypted != 0:
		return "the member is encrypted"
	case flags&^allowedFlags != 0:
		return fmt.Sprintf("general purpose flags %#04x; bundles use only %#04x", flags, allowedFlags)
	case method == zip.Deflate:
		return ""
	case method == zip.Store && flags&flagDescriptor == 0:
		return ""
	case method == zip.Store:
		return "stored (uncompressed) with a data descriptor: a streaming reader cannot find its end"
	default:
		return fmt.Sprintf("compression method %d; bundles use DEFLATE (8)", method)
	}
}

// checkLocal checks the local header of e at pos (before the central directory at cdStart)
// against e, and the data descriptor after its data if it has one; it returns where the member
// ends.
func checkLocal(r io.ReaderAt, pos, cdStart int64, e centralEntry, zf *zip.File) (int64, error) {
	fail := func(format string, args ...any) (int64, error) {
		return 0, layoutErr(e.name, pos, "local header: "+format, args...)
	}
	if cdStart-pos < localLen {
		return fail("runs into the central directory")
	}
	var b [localLen]byte
	if err := readAt(r, b[:], pos); err != nil {
		return 0, err
	}
	if le32(b[0:]) != sigLocal {
		return fail("no local header where the central directory says the member starts")
	}
	flags, method, mtime, mdate := le16(b[6:]), le16(b[8:]), le16(b[10:]), le16(b[12:])
	crc, csize, usize := le32(b[14:]), le32(b[18:]), le32(b[22:])
	nameLen, extraLen := int64(le16(b[26:])), int64(le16(b[28:]))
	switch {
	case flags != e.flags:
		return fail("flags %#04x; the central directory says %#04x", flags, e.flags)
	case method != e.method:
		return fail("compression method %d; the central directory says %d", method, e.method)
	case mtime != e.mtime || mdate != e.mdate:
		return fail("modification time differs from the central directory's")
	}
	hasDesc := flags&flagDescriptor != 0
	if hasDesc {
		if crc != 0 || csize != 0 || usize != 0 {
			return fail("CRC and sizes are set although a data descriptor carries them")
		}
	} else if crc != e.crc || uint64(csize) != e.csize || uint64(usize) != e.usize {
		return fail("CRC %08x, sizes %d/%d; the central directory says %08x, %d/%d", crc, csize, usize, e.crc, e.csize, e.usize)
	}
	if cdStart-pos-localLen < nameLen+extraLen {
		return fail("runs into the central directory")
	}
	rest := make([]byte, nameLen+extraLen)
	if err := readAt(r, rest, pos+localLen); err != nil {
		return 0, err
	}
	if name := rest[:nameLen]; string(name) != e.name {
		return fail("names the member %q; the central directory names it %q: streaming readers show the other name", clip(string(name)), clip(e.name))
	}
	extra, z64, ok := splitExtra(rest[nameLen:])
	switch {
	case !ok:
		return fail("malformed extra fields")
	case z64 != nil:
		// archive/zip's Writer never puts one in a local header (writer.go, writeDataDescriptor).
		return fail("a zip64 field; bundles carry sizes in the data descriptor")
	case !bytes.Equal(extra, e.extra):
		return fail("extra fields differ from the central directory's")
	}
	data := pos + localLen + nameLen + extraLen
	if got, err := zf.DataOffset(); err != nil || got != data {
		return fail("archive/zip finds the data at %d, not %d (%v)", got, data, err)
	}
	if e.csize > uint64(cdStart-data) {
		return fail("%d bytes of compressed data run into the central directory", e.csize)
	}
	end := data + int64(e.csize)
	if !hasDesc {
		return end, nil
	}
	// archive/zip's Writer writes 64-bit sizes in the descriptor exactly when a size needs
	// them (writer.go, writeDataDescriptor), and always the signature.
	n := int64(descriptorLen)
	if e.csize >= max32 || e.usize >= max32 {
		n = descriptor64
	}
	if cdStart-end < n {
		return fail("the data descriptor runs into the central directory")
	}
	d := make([]byte, n)
	if err := readAt(r, d, end); err != nil {
		return 0, err
	}
	dcrc, dcsize, dusize := uint64(le32(d[4:])), uint64(le32(d[8:])), uint64(le32(d[12:]))
	if n == descriptor64 {
		dcsize, dusize = le64(d[8:]), le64(d[16:])
	}
	switch {
	case le32(d[0:]) != sigDescriptor:
		return fail("no data descriptor after the compressed data (at %d)", end)
	case dcrc != uint64(e.crc) || dcsize != e.csize || dusize != e.usize:
		return fail("the data descriptor says CRC %08x, sizes %d/%d; the central directory %08x, %d/%d", dcrc, dcsize, dusize, e.crc, e.csize, e.usize)
	}
	return end + n, nil
}

// splitExtra checks that extra is a list of (id, size, data) fields filling it exactly, and
// returns the fields other than zip64, and the zip64 field's data (nil if none; ok is false
// if there are two).
func splitExtra(extra []byte) (rest, z64 []byte, ok bool) {
	rest = []byte{}
	for len(extra) > 0 {
		if len(extra) < 4 {
			return nil, nil, false
		}
		id, n := le16(extra), int(le16(extra[2:]))
		if len(extra)-4 < n {
			return nil, nil, false
		}
		if id == zip64ExtraID {
			if z64 != nil {
				return nil, nil, false
			}
			z64 = append([]byte{}, extra[4:4+n]...)
		} else {
			rest = append(rest, extra[:4+n]...)
		}
		extra = extra[4+n:]
	}
	return rest, z64, true
}

// gapErr describes the bytes [from, to) that belong to no listed member, naming the member
// they hide if they start with a local header.
func gapErr(r io.ReaderAt, from, to int64, where string) error {
	what := ""
	var b [localLen]byte
	if to-from >= localLen && readAt(r, b[:], from) == nil && le32(b[0:]) == sigLocal {
		n := min(int64(le16(b[26:])), to-from-localLen, 256)
		name := make([]byte, n)
		if readAt(r, name, from+localLen) == nil {
			what = fmt.Sprintf(": they hold an unlisted member %q, which streaming readers show", clip(string(name)))
		}
	}
	return layoutErr("", from, "%d bytes %s belong to no member the central directory lists%s", to-from, where, what)
}

func readAt(r io.ReaderAt, b []byte, off int64) error {
	if _, err := r.ReadAt(b, off); err != nil {
		return fmt.Errorf("zip layout: reading %d bytes at %d: %w", len(b), off, err)
	}
	return nil
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// openMember opens zf's content like zf.Open, and also refuses a DEFLATE member whose
// compressed data goes on after the end of its DEFLATE stream: archive/zip stops reading at
// the end of the stream, so such bytes, which checkZipLayout counts as part of the member,
// would be hidden from the verifier while a streaming reader takes them for what follows the
// member. Sizes and CRC are checked as zf.Open checks them.
func openMember(zf *zip.File) (io.ReadCloser, error) {
	if why := checkFlagsMethod(zf.Flags, zf.Method); why != "" {
		return nil, errors.New(why)
	}
	if zf.Method == zip.Store {
		return zf.Open()
	}
	raw, err := zf.OpenRaw()
	if err != nil {
		return nil, err
	}
	cr := &countReader{r: raw}
	// A bufio.Reader is an io.ByteReader, so flate reads from it byte by byte and stops at
	// the stream's end: what is left in it and in raw is what follows the stream.
	br := bufio.NewReader(cr)
	return &exactInflater{zf: zf, raw: cr, br: br, fr: flate.NewReader(br), crc: crc32.NewIEEE()}, nil
}

type exactInflater struct {
	zf  *zip.File
	raw *countReader
	br  *bufio.Reader
	fr  io.ReadCloser
	crc hash.Hash32
	n   uint64
	err error
}

func (x *exactInflater) Read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	n, err := x.fr.Read(p)
	x.crc.Write(p[:n])
	x.n += uint64(n)
	switch {
	case x.n > x.zf.UncompressedSize64:
		x.err = fmt.Errorf("inflates to more than the %d bytes its header declares", x.zf.UncompressedSize64)
	case errors.Is(err, io.EOF):
		consumed := x.raw.n - int64(x.br.Buffered())
		switch {
		case x.n != x.zf.UncompressedSize64:
			x.err = fmt.Errorf("inflates to %d bytes; its header declares %d", x.n, x.zf.UncompressedSize64)
		case x.crc.Sum32() != x.zf.CRC32:
			x.err = zip.ErrChecksum
		case uint64(consumed) != x.zf.CompressedSize64:
			x.err = fmt.Errorf("%d bytes follow the end of its DEFLATE stream inside its compressed size: hidden data", int64(x.zf.CompressedSize64)-consumed)
		default:
			x.err = io.EOF
		}
	case err != nil:
		x.err = err
	}
	return n, x.err
}

func (x *exactInflater) Close() error { return x.fr.Close() }
