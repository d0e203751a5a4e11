package service

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger"
)

// run runs the service briefly: on a refused configuration Run returns at once; otherwise it
// would serve until the context ends.
func run(t *testing.T, c Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Run(ctx, c)
}

func testConfig(dataDir string) Config {
	return Config{DataDir: dataDir, HTTPAddr: "127.0.0.1:0", NATSAddr: "127.0.0.1:0", LogOrigin: "lineage.test/perm",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestRunRefusesWorldWritableDataDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	err := run(t, testConfig(dir))
	if err == nil || !strings.Contains(err.Error(), "writable by every user (mode 0777)") || !strings.Contains(err.Error(), "chmod 700 "+dir) {
		t.Fatalf("Run with a 0777 data dir = %v, want a refusal naming chmod 700 %s", err, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys")); err == nil {
		t.Error("Run created files in the refused data dir")
	}
}

func TestRunRefusesReadableKeyFile(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "keys", "log.key")
	if _, _, err := ledger.LoadOrCreateSigner(key, "lineage.test/perm"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	err := run(t, testConfig(dir))
	if err == nil || !strings.Contains(err.Error(), "mode 0644") || !strings.Contains(err.Error(), "chmod 600 "+key) {
		t.Fatalf("Run with a 0644 key file = %v, want a refusal naming chmod 600 %s", err, key)
	}
}

func TestLockDataDirCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("new data dir has mode %04o, want 0700", perm)
	}
	// A group-writable (0770) dir is the operator's choice; only world-writable is refused.
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o770); err != nil {
		t.Fatal(err)
	}
	unlock2, err := LockDataDir(shared)
	if err != nil {
		t.Fatalf("LockDataDir(0770) = %v", err)
	}
	unlock2()
}
