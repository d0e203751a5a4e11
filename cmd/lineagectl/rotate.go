package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/service"
	"github.com/lineage-audit/lineage/ledger"
)

// runRotateKey is `lineagectl rotate-key`: roll the log's checkpoint signing key
// (docs/KEY-ROTATION.md). It holds the data dir lock, so it refuses while lineaged runs there.
func runRotateKey(args []string) error {
	fs := flag.NewFlagSet("rotate-key", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "lineaged data directory (lineaged must be stopped)")
	keyFile := fs.String("key-file", "", "the checkpoint signing key lineaged uses (default <data-dir>/keys/log.key)")
	ledgerName := fs.String("ledger", "tessera", "ledger driver of the data dir: tessera or trillian (where the last checkpoint is read)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl rotate-key [--data-dir DIR] [--key-file FILE] [--ledger tessera|trillian]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(*dataDir, "keys", "log.key")
	}
	unlock, err := service.LockDataDir(*dataDir)
	if err != nil {
		return fmt.Errorf("%w (stop lineaged before rotating its key)", err)
	}
	defer unlock()

	size, cpFile, err := lastCheckpointSize(*dataDir, *keyFile, *ledgerName)
	if err != nil {
		return err
	}
	res, err := ledger.RotateKey(*keyFile, size, time.Now())
	if err != nil {
		return err
	}
	r := res.Rotation
	if res.Resumed {
		fmt.Println("finished an interrupted rotation")
	}
	fmt.Printf("rotated the checkpoint key of %s at log size %d (%s)\n", r.Origin, r.Size, cpFile)
	fmt.Printf("old key:   %s\nnew key:   %s\nstatement: %s (signed by both keys)\n", r.Old, r.New, res.StatementFile)
	fmt.Printf("old public key:  %s\n", res.RetiredPub)
	fmt.Printf("old PRIVATE key: %s\n", res.RetiredKey)
	fmt.Println("  It no longer signs anything. Destroy it (shred -u) or archive it offline; whoever holds it can sign checkpoints that verify with the old key.")
	fmt.Println("next: start lineaged; tell the witnesses the new key (docs/KEY-ROTATION.md); clients run: lineagectl keys follow --verifier-file OLD.pub --api URL --out trusted.pub")
	return nil
}

// lastCheckpointSize reads the log's last checkpoint from the data dir and returns its size,
// checked with every key of the key's rotation chain (0 for a log that has none yet).
func lastCheckpointSize(dataDir, keyFile, ledgerName string) (uint64, string, error) {
	var cpFile string
	switch ledgerName {
	case "tessera":
		cpFile = filepath.Join(service.LogDir(dataDir), "checkpoint")
	case "trillian":
		// The Trillian driver's state dir in the data dir (internal/service/stores.go, openLedger).
		cpFile = filepath.Join(dataDir, "trillian-state", "checkpoint")
	default:
		return 0, "", fmt.Errorf("--ledger %q: want tessera or trillian", ledgerName)
	}
	pub, err := os.ReadFile(keyFile + ".pub")
	if err != nil {
		return 0, "", fmt.Errorf("read the current public key: %w", err)
	}
	chain, err := ledger.ReadRotations(ledger.RotationsDir(keyFile))
	if err != nil {
		return 0, "", err
	}
	keys := ledger.ChainKeys(chain)
	if cur := strings.TrimSpace(string(pub)); !slices.Contains(keys, cur) {
		keys = append(keys, cur)
	}
	v, err := ledger.ParseVerifiers([]byte(strings.Join(keys, "\n")))
	if err != nil {
		return 0, "", err
	}
	raw, err := os.ReadFile(cpFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, "no checkpoint yet", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read the last checkpoint: %w", err)
	}
	cp, err := ledger.OpenCheckpoint(raw, v)
	if err != nil {
		return 0, "", fmt.Errorf("the last checkpoint %s does not verify with the log's keys, refusing to rotate: %w", cpFile, err)
	}
	return cp.Size, cpFile, nil
}
