package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/verify"
)

// runFindings prints a tenant's findings (GET /v1/findings), optionally verifying every
// evidence record offline like a lineage answer.
func runFindings(args []string) error {
	fs := flag.NewFlagSet("findings", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	tenant := fs.String("tenant", "", "tenant")
	kind := fs.String("kind", "", "only these kinds (comma-separated; lineagectl findings --kinds lists them)")
	severity := fs.String("severity", "", "only these severities (comma-separated: high,medium,info)")
	agent := fs.String("agent", "", "only findings about this agent id")
	user := fs.String("user", "", "only findings about this user id")
	from := fs.String("from", "", "only findings with evidence at or after this time (RFC 3339)")
	to := fs.String("to", "", "only findings with evidence before this time (RFC 3339)")
	limit := fs.Int("limit", 0, "findings per page (default 100)")
	cursor := fs.String("cursor", "", "continue from a previous answer's next_cursor")
	kinds := fs.Bool("kinds", false, "list the finding kinds and what they mean, then exit")
	doVerify := fs.Bool("verify", false, "verify every evidence record offline: checkpoint signature, inclusion proof, record against its ledger entry")
	vkey := fs.String("verifier", "", "the log's public key, for --verify")
	vfile := fs.String("verifier-file", "", "file holding the log's public key, for --verify")
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl findings --tenant T [flags]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if *kinds {
		b, err := get(*api, "/v1/findings/kinds")
		if err != nil {
			return err
		}
		var ks []struct{ Kind, Title, Pillar, Summary string }
		if err := json.Unmarshal(b, &ks); err != nil {
			return fmt.Errorf("findings kinds: %w", err)
		}
		for _, k := range ks {
			fmt.Printf("%-22s %s (%s)\n%22s %s\n", safe(k.Kind), safe(k.Title), safe(k.Pillar), "", safe(k.Summary))
		}
		return nil
	}
	if *tenant == "" {
		return errors.New("--tenant is required")
	}
	q := queryParams(*tenant, map[string]string{"agent": *agent, "user": *user, "from": *from, "to": *to, "cursor": *cursor},
		map[string]string{"kind": *kind, "severity": *severity}, *limit, *doVerify)
	b, err := get(*api, "/v1/findings?"+q.Encode())
	if err != nil {
		return err
	}
	if *doVerify {
		v, err := loadVerifier(*vkey, *vfile)
		if err != nil {
			return err
		}
		res, err := verify.VerifyAnswer("findings", *tenant, b, v)
		if err != nil {
			return err
		}
		defer fmt.Fprintf(os.Stderr, "VERIFIED: %d evidence records, each in the log of %q at the checkpoint of size %d (root %x), matching its ledger entry\n",
			res.Actions, safe(res.Checkpoint.Origin), res.Checkpoint.Size, res.Checkpoint.Hash)
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(b, '\n'))
		return err
	}
	return printFindings(os.Stdout, b)
}

// printFindings prints a findings answer for a person; every record-derived string goes
// through safe.
func printFindings(w io.Writer, b []byte) error {
	var a verify.Findings
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("findings answer: %w", err)
	}
	fmt.Fprintf(w, "tenant %s: %d findings (checkpoint size %d)\n", safe(a.Tenant), len(a.Findings), a.CheckpointSize)
	for _, f := range a.Findings {
		fmt.Fprintf(w, "\n[%s] %s  id %s  %d records, %s … %s\n", strings.ToUpper(safe(f.Severity)), safe(f.Kind), safe(f.ID), f.Count, safe(f.First), safe(f.Last))
		fmt.Fprintf(w, "  %s\n", safe(f.Explanation))
		for _, e := range f.Evidence {
			line := fmt.Sprintf("    - %s (log index %d)", safe(e.ID), e.LogIndex)
			if e.Note != "" {
				line += ": " + safe(e.Note)
			}
			if e.Missing != "" {
				line += " [" + safe(e.Missing) + "]"
			}
			fmt.Fprintln(w, line)
		}
	}
	if a.NextCursor != "" {
		fmt.Fprintf(w, "\nmore: --cursor %s\n", a.NextCursor)
	}
	return nil
}
