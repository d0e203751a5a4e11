package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/query"
)

var httpClient = &http.Client{Timeout: 30 * time.Second}

// apiKey is the bearer credential sent to the API (--api-key or LINEAGE_API_KEY).
var apiKey string

// addAPIKeyFlag registers --api-key on a command that talks to the API.
func addAPIKeyFlag(fs *flag.FlagSet) {
	fs.StringVar(&apiKey, "api-key", "", "API key (lin_…) when lineaged requires authentication; prefer the LINEAGE_API_KEY environment variable")
}

// get fetches an API path and returns the body, turning error answers into errors.
func get(api, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(api, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

func runVerify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	id := fs.String("id", "", "record id to fetch and verify")
	tenant := fs.String("tenant", "", "tenant of the record (needed when the id exists in several)")
	proofFile := fs.String("proof", "", "verify a saved answer of GET /v1/records/{id} instead of fetching one")
	save := fs.String("save", "", "save the fetched answer to this file (verify it later with --proof, offline)")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key (e.g. data/keys/log.key.pub)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl verify (--id ID | --proof FILE) (--verifier KEY | --verifier-file FILE)")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	v, err := loadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	var raw []byte
	switch {
	case *proofFile != "":
		raw, err = os.ReadFile(*proofFile)
	case *id != "":
		path := "/v1/records/" + url.PathEscape(*id)
		if *tenant != "" {
			path += "?tenant=" + url.QueryEscape(*tenant)
		}
		raw, err = get(*api, path)
	default:
		return errors.New("give --id or --proof")
	}
	if err != nil {
		return err
	}
	if *save != "" {
		if err := os.WriteFile(*save, raw, 0o644); err != nil {
			return err
		}
	}
	rp, err := query.DecodeRecordProof(raw)
	if err != nil {
		return err
	}
	cp, err := query.VerifyRecordProof(rp, v)
	if err != nil {
		return err
	}
	id2 := ""
	if rp.Record != nil {
		id2 = rp.Record.Tenant + "/" + rp.Record.ID
	}
	fmt.Printf("OK: record %s is entry %d of log %q, included in the checkpoint of size %d (root %x) signed by %s\n",
		id2, rp.Index, cp.Origin, cp.Size, cp.Hash, v.Name())
	return nil
}

func runCheckpoint(args []string) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key")
	older := fs.String("since", "", "a checkpoint file trusted earlier: prove the latest one extends it")
	save := fs.String("save", "", "save the latest checkpoint to this file")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl checkpoint (--verifier KEY | --verifier-file FILE) [--since OLD] [--save FILE]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	v, err := loadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	raw, err := get(*api, "/v1/checkpoint")
	if err != nil {
		return err
	}
	cp, err := ledger.OpenCheckpoint(raw, v)
	if err != nil {
		return err
	}
	fmt.Printf("OK: checkpoint of %q, size %d, root %x\n", cp.Origin, cp.Size, cp.Hash)
	if *older != "" {
		oraw, err := os.ReadFile(*older)
		if err != nil {
			return err
		}
		old, err := ledger.OpenCheckpoint(oraw, v)
		if err != nil {
			return fmt.Errorf("older checkpoint: %w", err)
		}
		b, err := get(*api, fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.Size, cp.Size))
		if err != nil {
			return err
		}
		var p struct{ Proof [][]byte }
		if err := json.Unmarshal(b, &p); err != nil {
			return err
		}
		if err := ledger.VerifyConsistency(old, cp, p.Proof); err != nil {
			return err
		}
		fmt.Printf("OK: consistent with the older checkpoint of size %d\n", old.Size)
	}
	if *save != "" {
		return os.WriteFile(*save, raw, 0o644)
	}
	return nil
}

func runLineage(args []string) error {
	fs := flag.NewFlagSet("lineage", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	tenant := fs.String("tenant", "", "tenant")
	user := fs.String("user", "", "user id")
	from := fs.String("from", "", "window start (RFC 3339, inclusive)")
	to := fs.String("to", "", "window end (RFC 3339, exclusive)")
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl lineage --tenant T --user U [--from T1] [--to T2] [--json]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	q := url.Values{"tenant": {*tenant}}
	if *from != "" {
		q.Set("from", *from)
	}
	if *to != "" {
		q.Set("to", *to)
	}
	b, err := get(*api, "/v1/lineage/users/"+url.PathEscape(*user)+"?"+q.Encode())
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(b, '\n'))
		return err
	}
	var ul query.UserLineage
	if err := json.Unmarshal(b, &ul); err != nil {
		return err
	}
	fmt.Printf("%s (issuer %s), tenant %s: %d actions, checkpoint size %d\n", ul.User.ID, ul.User.Issuer, ul.Tenant, ul.Actions, ul.CheckpointSize)
	for _, a := range ul.Agents {
		printAgent(a, "  ")
	}
	return nil
}

func printAgent(a *query.AgentNode, indent string) {
	fmt.Printf("%s└ agent %s %v\n", indent, a.ID, a.Roles)
	for _, x := range a.Actions {
		fmt.Printf("%s    %s %-8s %s %s  (policy %s@%s, log #%d, id %s)\n", indent, x.Time, x.Decision.Effect, x.Action.Type, x.Action.Target,
			x.Decision.Policy.ID, x.Decision.Policy.Version, x.LogIndex, x.ID)
	}
	for _, s := range a.Agents {
		printAgent(s, indent+"    ")
	}
}
