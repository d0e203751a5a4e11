package service

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A cluster node refuses, before opening anything, every store only one machine can see, a
// missing shared signing key (it would make a key of its own), and settings it cannot honour.
func TestHARefusesLocalStores(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "log.key")
	if err := os.WriteFile(key, []byte("not read by the check"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := Config{HA: true, NodeID: "n1", LeaseTTL: 5 * time.Second, Ledger: "trillian", TrillianAddr: "127.0.0.1:1", TrillianTreeID: 1,
		Index: "clickhouse", ClickHouseDSN: "clickhouse://x@127.0.0.1:1/x", NATSURL: "nats://127.0.0.1:1", KeyFile: key}
	if err := checkHA(ok); err != nil {
		t.Fatalf("a valid cluster node was refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"tessera POSIX log", func(c *Config) { c.Ledger = "tessera" }, "--ledger trillian"},
		{"tessera AWS log", func(c *Config) { c.Ledger = "tessera-aws" }, "no per-index fencing"},
		{"SQLite index", func(c *Config) { c.Index = "sqlite" }, "--index clickhouse"},
		{"embedded NATS", func(c *Config) { c.NATSURL = "" }, "embedded NATS server serves one node only"},
		{"witness policy", func(c *Config) { c.WitnessPolicy = "w.json" }, "not supported yet"},
		{"short lease", func(c *Config) { c.LeaseTTL = time.Second }, "below the minimum"},
		{"no node id", func(c *Config) { c.NodeID = "" }, "--node-id"},
		{"missing key", func(c *Config) { c.KeyFile = filepath.Join(dir, "none") }, "shared by every node"},
	} {
		c := ok
		tc.edit(&c)
		if err := checkHA(c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	single := ok
	single.HA, single.Ledger, single.Index, single.NATSURL = false, "tessera", "sqlite", ""
	if err := checkHA(single); err != nil {
		t.Fatalf("a single node was refused: %v", err)
	}
}
