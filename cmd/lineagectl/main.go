// Command lineagectl is the Lineage command line: publish records, verify proofs offline,
// query lineage, make keys and rebuild the index.
package main

import (
	"fmt"
	"os"
	"sort"
)

const envPrefix = "LINEAGE_"

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"publish":       {"publish records from a file (JSON array or NDJSON) or --demo N generated ones to NATS", runPublish},
	"verify":        {"verify offline with the log's public key: a record (--id, --proof) or an export bundle (verify BUNDLE.zip)", runVerify},
	"export":        {"start a compliance export (eu-ai-act, fannie-mae); --wait follows it, --out DIR downloads its files", runExport},
	"checkpoint":    {"fetch the latest checkpoint, verify its signature, and its consistency with an older one", runCheckpoint},
	"lineage":       {"print the user → agent → sub-agent → action tree for a user", runLineage},
	"findings":      {"list a tenant's findings (identity failures found in the log), with their evidence", runFindings},
	"keygen":        {"create a checkpoint signing key pair", runKeygen},
	"rotate-key":    {"roll the checkpoint signing key; old checkpoints stay verifiable (lineaged must be stopped)", runRotateKey},
	"keys":          {"keys follow: verify the key rotation statements from a trusted key and write every linked key", runKeys},
	"trillian":      {"trillian create-tree: create a PREORDERED_LOG tree for --ledger trillian", runTrillian},
	"quarantine":    {"quarantine ls: list rejected records with their reasons (admin)", runQuarantine},
	"apikey":        {"apikey create: make an API key and its key-file entry", runAPIKey},
	"sourcekey":     {"sourcekey create: make an enforcement point's Ed25519 signing key and its registry entry", runSourceKey},
	"erase":         {"erase a subject (crypto-shredding): destroy its keys, purge the index, log the erasure (compliance role)", runErase},
	"rebuild-index": {"rebuild the index from the log alone (lineaged must be stopped)", runRebuild},
	"lost-keys":     {"list the erasure subject keys the log needs and the key store lost; --declare records them lost (lineaged must be stopped)", runLostKeys},
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	if err := commands[os.Args[1]].run(os.Args[2:]); err != nil {
		// Errors may quote the API, a record or a file: show them printable (safe.go).
		fmt.Fprintf(os.Stderr, "lineagectl %s: %s\n", os.Args[1], safe(err.Error()))
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lineagectl <command> [flags]   (lineagectl <command> -h lists its flags)\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-14s %s\n", n, commands[n].summary)
	}
}
