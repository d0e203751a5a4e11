package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/verify"

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
	fs.StringVar(&c.Ledger, "ledger", "tessera", "ledger driver of the data dir: tessera or trillian")
	fs.StringVar(&c.TrillianAddr, "trillian-addr", "", "Trillian log server (with --ledger trillian)")
	fs.Int64Var(&c.TrillianTreeID, "trillian-tree-id", 0, "Trillian tree id (with --ledger trillian)")
	fs.StringVar(&c.TrillianTLSCA, "trillian-tls-ca", "", "CA file for TLS to Trillian")
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
	var v note.Verifier
	var err error
	if *vfile == "" {
		// The data dir's keys: the current one and, after rotations, every earlier key, so a
		// checkpoint signed before the last rotation still opens.
		v, err = dataDirVerifier(filepath.Join(*dataDir, "keys", "log.key"))
	} else {
		v, err = ledger.ReadVerifierFile(*vfile)
	}
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

// runKeys is `lineagectl keys follow`.
func runKeys(args []string) error {
	if len(args) == 0 || args[0] != "follow" {
		return fmt.Errorf("usage: lineagectl keys follow (--verifier KEY | --verifier-file FILE) (--statements PATH... | --api URL) [--out FILE]")
	}
	return runKeysFollow(args[1:])
}

// runKeysFollow is `lineagectl keys follow`: from the log keys the caller trusts, follow the
// rotation statements (files, or GET /v1/keys) and write every key they link, oldest first, to
// a key file that lineagectl verify/checkpoint and lineage-verify accept (--verifier-file).
func runKeysFollow(args []string) error {
	fs := flag.NewFlagSet("keys follow", flag.ContinueOnError)
	vkey := fs.String("verifier", "", "a log key you trust (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file of the log keys you trust, one per line (e.g. an old log.key.pub)")
	statements := fs.String("statements", "", "a rotation statement file, or a directory of them (*.note, e.g. data/keys/rotations); more files may follow as arguments")
	addAPIKeyFlag(fs)
	api := fs.String("api", "", "fetch the statements from this Lineage API (GET /v1/keys) instead")
	out := fs.String("out", "", "write the keys to this file (default: standard output)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl keys follow (--verifier KEY | --verifier-file FILE) (--statements PATH [FILE...] | --api URL) [--out FILE]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	trusted, err := trustedKeys(*vkey, *vfile)
	if err != nil {
		return err
	}
	var sts [][]byte
	var current string // the key the API signs with now, which the chain must reach
	switch {
	case *api != "" && (*statements != "" || fs.NArg() > 0):
		return fmt.Errorf("give --statements or --api, not both")
	case *api != "":
		b, err := call(http.MethodGet, *api, "/v1/keys", nil, verify.MaxKeysAnswer+1)
		if err != nil {
			return err
		}
		k, err := verify.DecodeKeys(b)
		if err != nil {
			return err
		}
		for _, s := range k.Rotations {
			sts = append(sts, []byte(s))
		}
		current = k.Current
	case *statements != "":
		if sts, err = readStatements(append([]string{*statements}, fs.Args()...)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("give --statements PATH or --api URL")
	}
	keys, err := verify.FollowRotations(trusted[len(trusted)-1], sts)
	if err != nil {
		return err
	}
	for _, k := range trusted {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("the statements link the newest trusted key, but not the trusted key %s", k)
		}
	}
	if current != "" && keys[len(keys)-1] != current {
		return fmt.Errorf("the API signs with %s, which the rotation statements do not reach from the trusted key", current)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# checkpoint keys of %s, oldest first, linked by %d rotation statements (lineagectl keys follow)\n", keys[0][:strings.IndexByte(keys[0], '+')], len(sts))
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	if *out == "" {
		fmt.Print(b.String())
		return nil
	}
	if err := atomicfile.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d keys written to %s (the current key is %s)\n", len(keys), *out, keys[len(keys)-1])
	return nil
}

// trustedKeys reads the keys given by --verifier or --verifier-file, oldest first.
func trustedKeys(vkey, file string) ([]string, error) {
	text := vkey
	if file != "" {
		if vkey != "" {
			return nil, fmt.Errorf("give --verifier or --verifier-file, not both")
		}
		b, err := ledger.ReadFileLimit(file, ledger.MaxVerifierFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	// ParseVerifiers checks the file (one origin, distinct keys, bounded).
	if _, err := ledger.ParseVerifiers([]byte(text)); err != nil {
		if vkey == "" && file == "" {
			return nil, fmt.Errorf("a trusted key is required: --verifier KEY or --verifier-file FILE")
		}
		return nil, err
	}
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	return keys, nil
}

// readStatements reads rotation statement files; a directory stands for its *.note files.
func readStatements(paths []string) ([][]byte, error) {
	var sts [][]byte
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(p, "*.note")); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			if len(sts) == ledger.MaxRotations {
				return nil, fmt.Errorf("more than %d rotation statements", ledger.MaxRotations)
			}
			b, err := ledger.ReadFileLimit(f, ledger.MaxRotationSize)
			if err != nil {
				return nil, fmt.Errorf("rotation statement: %w", err)
			}
			sts = append(sts, b)
		}
	}
	return sts, nil
}
