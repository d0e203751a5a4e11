package main

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/loadgen"
)

// sourceKeysMain is `lineagebench source-keys --sign-key FILE --sign-key-id ID --n N --out
// FILE`: the lineaged --source-keys file that registers the public key of --sign-key for every
// (tenant, source) of the first N generated records, with the key id --sign-key-id expands to
// for each ({source}, {tenant}). scripts/cpu-per-record.sh SIGNED=1 uses it.
func sourceKeysMain(args []string) error {
	fs := flag.NewFlagSet("lineagebench source-keys", flag.ContinueOnError)
	signKey := fs.String("sign-key", "", "source key seed file (lineagectl sourcekey create)")
	keyID := fs.String("sign-key-id", "", "key id template, as lineagebench --sign-key-id")
	n := fs.Int("n", 100_000, "records the run publishes")
	seed := fs.Int64("seed", 42, "generator seed of the run")
	out := fs.String("out", "", "the --source-keys file to write")
	fs.Usage = cliflag.Usage(fs, "LINEAGEBENCH_", "usage: lineagebench source-keys --sign-key FILE --sign-key-id ID --n N --out FILE")
	if err := cliflag.Parse(fs, "LINEAGEBENCH_", args); err != nil {
		return err
	}
	if *signKey == "" || *keyID == "" || *out == "" {
		return errors.New("source-keys: --sign-key, --sign-key-id and --out are required")
	}
	priv, err := ingest.LoadSourceKeySeed(*signKey)
	if err != nil {
		return fmt.Errorf("source-keys: %w", err)
	}
	pub := []byte(priv.Public().(ed25519.PublicKey))
	var f ingest.SourceKeyFile
	seen := map[string]bool{}
	for _, s := range loadgen.Sources(*seed, *n) {
		id := loadgen.SignKeyID(*keyID, s.Tenant, s.SourceID)
		if seen[s.Tenant+"\x00"+id] {
			return fmt.Errorf("source-keys: key id %q would vouch for two sources of tenant %q: put {source} in --sign-key-id", id, s.Tenant)
		}
		seen[s.Tenant+"\x00"+id] = true
		f.Keys = append(f.Keys, ingest.SourceKey{Tenant: s.Tenant, SourceID: s.SourceID, KeyID: id, PublicKey: pub})
	}
	// The file must load as lineaged will load it.
	if _, err := ingest.NewSourceKeys(f); err != nil {
		return fmt.Errorf("source-keys: %w", err)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("source-keys: %w", err)
	}
	fmt.Printf("%s: %d source keys\n", *out, len(f.Keys))
	return nil
}
