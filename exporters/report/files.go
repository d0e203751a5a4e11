package report

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lineage-audit/lineage/verify"
)

// staging is the directory an export writes its files into before they are archived. Every
// file is hashed while it is written, so the manifest costs no second read.
type staging struct {
	root  string
	files []verify.ManifestFile
}

// outFile is one file of the export being written; it hashes what passes through it.
type outFile struct {
	st  *staging
	rel string
	f   *os.File
	bw  *bufio.Writer
	h   hash.Hash
	n   int64
}

// create starts the file rel (a slash-separated path) under the staging root.
func (s *staging) create(rel string) (*outFile, error) {
	if !verify.ValidBundlePath(rel) {
		return nil, fmt.Errorf("exporters: internal: bad bundle path %q", rel)
	}
	p := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("exporters: %w", err)
	}
	return &outFile{st: s, rel: rel, f: f, bw: bufio.NewWriterSize(f, 256<<10), h: sha256.New()}, nil
}

// Write implements io.Writer.
func (o *outFile) Write(p []byte) (int, error) {
	o.h.Write(p)
	o.n += int64(len(p))
	return o.bw.Write(p)
}

// WriteString implements io.StringWriter.
func (o *outFile) WriteString(s string) (int, error) { return o.Write([]byte(s)) }

// close flushes the file and records it for the manifest. The staging copy is not fsynced:
// it is an intermediate; the archive and the report files handed out are (see finish).
func (o *outFile) close() error {
	err := o.bw.Flush()
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("exporters: write %s: %w", o.rel, err)
	}
	var sum [32]byte
	copy(sum[:], o.h.Sum(nil))
	o.st.files = append(o.st.files, verify.ManifestFile{Path: o.rel, Size: o.n, SHA256: sum})
	return nil
}

// abort closes the file without recording it (on an error path).
func (o *outFile) abort() { o.f.Close() }

// write writes a whole small file.
func (s *staging) write(rel string, b []byte) error {
	o, err := s.create(rel)
	if err != nil {
		return err
	}
	if _, err := o.Write(b); err != nil {
		o.abort()
		return err
	}
	return o.close()
}

// manifestFiles returns the recorded files sorted by path.
func (s *staging) manifestFiles() []verify.ManifestFile {
	out := slices.Clone(s.files)
	slices.SortFunc(out, func(a, b verify.ManifestFile) int { return strings.Compare(a.Path, b.Path) })
	return out
}

// syncFile fsyncs a file that is handed out, so that a job marked done after a crash has whole
// files, not a prefix.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
