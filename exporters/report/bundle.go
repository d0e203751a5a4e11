package report

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/verify"
)

// The evidence bundle is a ZIP archive whose layout, manifest and records lines
// verify/manifest.go defines, for this writer and for the offline verifier alike.
//
// Why ZIP and not tar.gz: an examiner opens a ZIP with the file manager of any desktop and reads
// report.html straight from it, with no tools; and a ZIP has a central directory, so the
// verifier reads MANIFEST first and then each file in the order it needs (records before the
// tables that cite them) instead of buffering a stream. ZIP's weak points (names that climb out
// of the extraction directory, duplicate names, symlinks, bombs) are exactly what verify.VerifyBundle
// refuses or bounds; and because a ZIP describes its members twice (local headers and central
// directory), verify/zipcheck.go refuses any archive not laid out exactly as this writer lays
// it out, so that streaming readers and the verifier see the same members. Entries are DEFLATE-compressed at BestSpeed: ledger entries and proofs
// compress well, and on a shared 2-core machine compressing a million records at the default
// level would take longer than reading them from the log.

// recordsPerFile bounds the records in one records/*.ndjson file, so that the manifest lists
// a handful of files for a million records and a changed byte still points at a small file.
const recordsPerFile = 10_000

// writeBundle writes the archive at path: the signed manifest, then every staged file in
// manifest order. It is written to a temporary name, fsynced and renamed, so a crash never
// leaves a partial bundle under the final name. It returns the archive's SHA-256 and size.
func writeBundle(path string, manifest []byte, root string, files []verify.ManifestFile, modified time.Time) ([32]byte, int64, error) {
	var sum [32]byte
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return sum, 0, fmt.Errorf("exporters: bundle: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	zw := zip.NewWriter(cw)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	add := func(name string, r io.Reader) error {
		hdr := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified.UTC()}
		hdr.SetMode(0o644)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, r)
		return err
	}
	err = func() error {
		if err := add(verify.ManifestName, bytes.NewReader(manifest)); err != nil {
			return err
		}
		for _, mf := range files {
			src, err := os.Open(filepath.Join(root, filepath.FromSlash(mf.Path)))
			if err != nil {
				return err
			}
			err = add(mf.Path, src)
			src.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", mf.Path, err)
			}
		}
		return zw.Close()
	}()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return sum, 0, fmt.Errorf("exporters: bundle %s: %w", filepath.Base(path), err)
	}
	copy(sum[:], h.Sum(nil))
	return sum, cw.n, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
