package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// cachedBinary returns the path of binary bin in the cache entry dir entry, building it there on
// first use: under the cache lock, build writes the binary to the path it is given (in a
// temporary directory of the cache), which is then renamed into place, so a half-built binary
// is never found. what names the build in the test log.
func cachedBinary(t testing.TB, entry, bin, what string, build func(out string)) string {
	t.Helper()
	var path string
	withCacheLock(t, func(cache string) {
		dir := filepath.Join(cache, entry)
		path = filepath.Join(dir, bin)
		if _, err := os.Stat(path); err == nil {
			return
		}
		start := time.Now()
		t.Logf("testenv: building %s", what)
		tmp, err := os.MkdirTemp(cache, "build-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		build(filepath.Join(tmp, bin))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(tmp, bin), path); err != nil {
			t.Fatal(err)
		}
		t.Logf("testenv: built %s in %v", bin, time.Since(start).Round(time.Second))
	})
	return path
}
