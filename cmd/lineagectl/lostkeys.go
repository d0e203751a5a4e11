package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/service"
)

// runLostKeys lists the subject keys a log with erasure on needs and its key store has lost (a
// restore from a backup older than their first record: lineaged stops indexing at the first
// entry sealed under one), and with --declare records each as lost, so that its fields read
// as erased and indexing goes on (docs/ERASURE.md, "Backups and restores").
func runLostKeys(args []string) error {
	fs := flag.NewFlagSet("lost-keys", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "lineaged data directory")
	vfile := fs.String("verifier-file", "", "log public key file (default <data-dir>/keys/log.key.pub with the keys of its rotations)")
	declare := fs.Bool("declare", false, "record a tombstone for every lost key (their fields then read as erased); needs --basis")
	basis := fs.String("basis", "", "what happened, recorded in each tombstone (e.g. \"key store restored from the backup of 2026-11-02; later keys lost\")")
	var c service.Config
	logFlags(fs, &c)
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl lost-keys [--data-dir DIR] [--declare --basis TEXT]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *declare && *basis == "" {
		return errors.New("--declare needs --basis: what happened, recorded in each tombstone")
	}
	v, err := logVerifier(*dataDir, *vfile)
	if err != nil {
		return err
	}
	c.DataDir = *dataDir
	last := time.Now()
	lost, err := service.LostKeys(context.Background(), c, v, *declare, *basis, func(done, total uint64) {
		if time.Since(last) > time.Second || done == total {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "lost-keys: %d/%d entries read (%.0f%%)\n", done, total, 100*float64(done)/float64(max(total, 1)))
		}
	})
	for _, l := range lost {
		fmt.Printf("tenant %s: key %s lost: %d entries, the first at log index %d\n", safe(l.Tenant), l.KeyID, l.Entries, l.First)
	}
	if err != nil {
		return err
	}
	switch {
	case len(lost) == 0:
		fmt.Println("no key is lost: the key store holds a key or a tombstone for every sealed field of the log")
	case *declare:
		fmt.Printf("declared %d key(s) lost: their fields read as erased; start lineaged (an index that stopped at them goes on)\n", len(lost))
	default:
		fmt.Printf("%d key(s) lost; restore a newer backup of the key store if there is one, or record them lost with --declare --basis TEXT\n", len(lost))
	}
	return nil
}
