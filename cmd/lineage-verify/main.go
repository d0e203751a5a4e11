// Command lineage-verify is the auditor's tool: it checks Lineage's evidence offline with the
// log's public key alone — a record and its inclusion proof (the API's JSON answer or a portable
// C2SP tlog-proof), a lineage answer, a checkpoint and its consistency with an older one, a
// compliance export bundle — and can fetch what it checks from the query API over plain HTTP.
// Every command that checks a checkpoint takes --witness-policy (LINEAGE_WITNESS_POLICY) to
// require the witnesses' cosignatures (docs/PROOFS.md). It is built on the verify package and shares its command
// code with `lineagectl verify` and `lineagectl checkpoint` (internal/verifycmd), without
// linking any of the server (deps_test.go keeps it that way).
package main

import (
	"fmt"
	"os"
	"sort"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/verifycmd"
)

var env = verifycmd.Env{Prog: "lineage-verify", EnvPrefix: "LINEAGE_"}

type command struct {
	summary string
	run     func(verifycmd.Env, []string) error
}

var commands = map[string]command{
	"verify":      {"verify a record (--id, --proof: JSON or C2SP tlog-proof) or an export bundle (verify BUNDLE.zip) with the log's public key", verifycmd.Verify},
	"checkpoint":  {"fetch the latest checkpoint, verify its signature, and its consistency with an older one", verifycmd.Checkpoint},
	"consistency": {"verify two saved checkpoints and a consistency proof between them (saved, or fetched with --api)", verifycmd.Consistency},
	"answer":      {"verify a lineage answer (saved from lineagectl lineage --verify --json, or fetched with --api)", verifycmd.Answer},
	"keys":        {"keys follow: from a log key you trust, check the key rotation statements (files or GET /v1/keys) and write every key they link", verifycmd.Keys},
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]].run == nil {
		usage()
		os.Exit(2)
	}
	if err := commands[os.Args[1]].run(env, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "lineage-verify %s: %s\n", os.Args[1], lineage.Printable(err.Error()))
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lineage-verify <command> [flags]   (lineage-verify <command> -h lists its flags)\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
}
