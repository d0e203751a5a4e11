package loadgen

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{
		"log/checkpoint":                    100,
		"log/.state/treeState":              50,
		"log/tile/0/000":                    8192,
		"log/tile/0/001.p/10":               320,
		"log/tile/entries/000":              40_000,
		"log/tile/entries/001.p/10":         1_500,
		"log/tile/entries/x001/002.p/7":     700,
		"index.sqlite":                      20_000,
		"index.sqlite-wal":                  4_000,
		"index.sqlite-shm":                  32_768,
		"nats/jetstream/$G/streams/R/1.blk": 5_000,
		"keys/log.key":                      64,
		"lineaged.log":                      10,
		"logfile":                           3, // not under log/
		"index.sqlite.bak":                  7, // not the index
	}
	for p, n := range files {
		p = filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symbolic link is not followed or counted.
	if err := os.Symlink(filepath.Join(dir, "index.sqlite"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	d, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, u Usage, files int, bytes int64) {
		t.Helper()
		if u.Files != files || u.Bytes != bytes {
			t.Errorf("%s: %d files, %d bytes; want %d, %d", name, u.Files, u.Bytes, files, bytes)
		}
		// Allocated blocks: at least the size for these non-sparse files (zeros written), in
		// whole 512-byte blocks, and at most a 64 KiB block per file more.
		if u.Allocated < u.Bytes && u.Bytes > 0 || u.Allocated%512 != 0 || u.Allocated > u.Bytes+int64(files)*65536 {
			t.Errorf("%s: %d bytes allocated for %d bytes in %d files", name, u.Allocated, u.Bytes, files)
		}
	}
	check("log", d.Log, 7, 100+50+8192+320+40_000+1_500+700)
	check("log partial", d.LogPartial, 3, 320+1_500+700)
	check("index", d.Index, 3, 20_000+4_000+32_768)
	check("index wal", d.IndexWAL, 2, 4_000+32_768)
	check("nats", d.NATS, 1, 5_000)
	check("other", d.Other, 4, 64+10+3+7)
	check("log+index", d.LogIndex(), 10, d.Log.Bytes+d.Index.Bytes)
	check("total", d.Total(), 15, 100+50+8192+320+40_000+1_500+700+20_000+4_000+32_768+5_000+64+10+3+7)

	r := Result{DiskRecords: 100}
	if got := r.DiskPerRecord(d.NATS); got != 50 {
		t.Errorf("DiskPerRecord = %v, want 50", got)
	}
	if got := (Result{}).DiskPerRecord(d.NATS); got != 0 {
		t.Errorf("DiskPerRecord without records = %v, want 0", got)
	}

	if _, err := DiskUsage(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing data dir: want an error")
	}
}
