package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateSignerKeyFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "log.key")
	if _, _, err := LoadOrCreateSigner(path, "lineage.test/mode"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&0o077 != 0 || got&want != got {
			t.Errorf("%s created with mode %04o, want at most %04o", p, got, want)
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateSigner(path, "lineage.test/mode")
		if !errors.Is(err, errKeyMode) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("key file mode %04o: err = %v, want a refusal naming chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateSigner(path, "lineage.test/mode"); err != nil {
			t.Errorf("key file mode %04o: %v", mode, err)
		}
	}
}
