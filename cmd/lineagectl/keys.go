package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/internal/verifycmd"
	"github.com/lineage-audit/lineage/ledger"
	"golang.org/x/mod/sumdb/note"
)

func runKeygen(args []string) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	origin := fs.String("origin", "", "log origin, the key's name (e.g. lineage.example.com/prod)")
	out := fs.String("out", "./data/keys/log.key", "private key file to create (the verifier goes to <out>.pub)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl keygen --origin NAME [--out FILE]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if *origin == "" {
		return fmt.Errorf("--origin is required")
	}
	skey, vkey, err := ledger.GenerateKey(*origin)
	if err != nil {
		return err
	}
	if err := ledger.WriteKeyPair(*out, skey, vkey); err != nil {
		return err
	}
	fmt.Printf("private key: %s (keep it secret; lineaged serve --key-file %s)\nverifier:    %s\n", *out, *out, vkey)
	return nil
}

// loadVerifier reads the log's public key from a verifier string or a file holding one.
func loadVerifier(vkey, file string) (note.Verifier, error) {
	return verifycmd.LoadVerifier(vkey, file)
}

func runRebuild(args []string) error {
	fs := flag.NewFlagSet("rebuild-index", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "lineaged data directory")
	vfile := fs.String("verifier-file", "", "log public key file (default <data-dir>/keys/log.key.pub with the keys of its rotations)")
	var c service.Config
	logFlags(fs, &c)
	c.RegisterTesseraAWSFlags(fs)
	fs.BoolVar(&c.HA, "ha", false, "the log belongs to a cluster of lineaged --ha nodes: read its checkpoint from the cluster's NATS (--nats-url) instead of the data dir")
	fs.StringVar(&c.NATSURL, "nats-url", "", "the cluster's NATS seed URLs (with --ha)")
	c.NATS.Register(fs)
	// The index flags are lineaged serve's, with the same environment variables, so a rebuild
	// uses exactly the index (and retention) the daemon does.
	fs.StringVar(&c.Index, "index", "sqlite", "index to rebuild: sqlite (the data dir's file) or clickhouse (emptied and refilled in place)")
	fs.StringVar(&c.ClickHouseDSN, "clickhouse-dsn", "", "ClickHouse native DSN for --index clickhouse (clickhouse://user:password@host:9000/lineage); prefer the environment variable, it holds a password")
	fs.DurationVar(&c.IndexRetention, "index-retention", 0, "the index retention lineaged serve uses (0: forever); under 4392h (six months) needs --force-short-retention")
	fs.BoolVar(&c.ForceShortRetention, "force-short-retention", false, "allow an index retention under six months")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl rebuild-index [--data-dir DIR] [--index sqlite|clickhouse]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	v, err := logVerifier(*dataDir, *vfile)
	if err != nil {
		return err
	}
	start := time.Now()
	last := time.Now()
	c.DataDir = *dataDir
	n, err := service.RebuildIndex(context.Background(), c, v, func(done, total uint64) {
		if time.Since(last) > time.Second || done == total {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "rebuild-index: %d/%d entries (%.0f%%)\n", done, total, 100*float64(done)/float64(max(total, 1)))
		}
	})
	if err != nil {
		return err
	}
	// The DSN is not printed: it may hold a password.
	what := service.IndexPath(*dataDir)
	if c.Index == "clickhouse" {
		what = "the ClickHouse index"
	}
	fmt.Printf("rebuilt %s from %d log entries in %s\n", what, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// logFlags registers the flags that locate a data dir's log and its erasure key store (the
// offline commands: rebuild-index, lost-keys).
func logFlags(fs *flag.FlagSet, c *service.Config) {
	fs.StringVar(&c.Ledger, "ledger", "tessera", "ledger driver of the data dir: tessera, trillian or tessera-aws")
	fs.StringVar(&c.TrillianAddr, "trillian-addr", "", "Trillian log server (with --ledger trillian)")
	fs.Int64Var(&c.TrillianTreeID, "trillian-tree-id", 0, "Trillian tree id (with --ledger trillian)")
	fs.StringVar(&c.TrillianTLSCA, "trillian-tls-ca", "", "CA file for TLS to Trillian")
	fs.StringVar(&c.ErasureKeyStore, "erasure-key-store", "", "the erasure key store, for a log with erasure on (default <data-dir>/keys/erasure.sqlite)")
	fs.StringVar(&c.ErasureMasterKeyFile, "erasure-master-key-file", "", "its master key file (default <data-dir>/keys/erasure.master; LINEAGE_ERASURE_MASTER_KEY holds the key itself instead)")
}

// logVerifier is the verifier of a data dir's log: the key file vfile if set, otherwise the
// data dir's keys (the current one and, after rotations, every earlier key, so a checkpoint
// signed before the last rotation still opens).
func logVerifier(dataDir, vfile string) (note.Verifier, error) {
	if vfile != "" {
		return ledger.ReadVerifierFile(vfile)
	}
	return dataDirVerifier(filepath.Join(dataDir, "keys", "log.key"))
}

// dataDirVerifier is the verifier of the key file keyFile: its .pub and the keys of its rotation
// chain (ledger.LoadKeyring).
func dataDirVerifier(keyFile string) (note.Verifier, error) {
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		return nil, fmt.Errorf("read the log's public key: %w", err)
	}
	kr, _, err := ledger.LoadKeyring(keyFile, strings.TrimSpace(string(pub)))
	if err != nil {
		return nil, err
	}
	return kr, nil
}

// runKeys is `lineagectl keys follow`, the command code shared with lineage-verify
// (internal/verifycmd/keys.go).
func runKeys(args []string) error { return verifycmd.Keys(verifyEnv, args) }
