package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/query/auth"
)

func runQuarantine(args []string) error {
	if len(args) == 0 || args[0] != "ls" {
		return errors.New("usage: lineagectl quarantine ls [--tenant T] [--after SEQ] [--limit N] [--json]")
	}
	fs := flag.NewFlagSet("quarantine ls", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	tenant := fs.String("tenant", "", "only this tenant's quarantine (required unless the key sees all tenants)")
	after := fs.Uint64("after", 0, "list entries after this stream sequence (paging)")
	limit := fs.Int("limit", 100, "entries to list (1..1000)")
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl quarantine ls [flags]")
	if err := cliflag.Parse(fs, envPrefix, args[1:]); err != nil {
		return err
	}
	q := url.Values{"after": {fmt.Sprint(*after)}, "limit": {fmt.Sprint(*limit)}}
	if *tenant != "" {
		q.Set("tenant", *tenant)
	}
	b, err := get(*api, "/v1/quarantine?"+q.Encode())
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(b, '\n'))
		return err
	}
	var out struct {
		Entries []ingest.QuarantineEntry `json:"entries"`
		Next    uint64                   `json:"next"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return err
	}
	fmt.Printf("%-6s %-26s %-16s %-20s %s\n", "SEQ", "RECEIVED", "REASON", "FIELD", "SUBJECT / DETAIL")
	for _, e := range out.Entries {
		// Field and detail may quote the rejected record itself (an unknown member's name, a
		// hostile id): print them through safe.go.
		fmt.Printf("%-6d %-26s %-16s %-20s %s\n       %s\n", e.Seq, e.ReceivedAt.Format("2006-01-02T15:04:05.000Z"), safe(e.Reason.Code), safe(e.Reason.Field), safe(e.Subject), safe(preview(e.Reason.Detail, 160)))
	}
	if out.Next != 0 {
		fmt.Printf("more: lineagectl quarantine ls --after %d\n", out.Next)
	}
	return nil
}

func preview(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func runAPIKey(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: lineagectl apikey create --id NAME --role ROLE[,ROLE] --tenant T[,T|*]")
	}
	fs := flag.NewFlagSet("apikey create", flag.ContinueOnError)
	id := fs.String("id", "", "key name, shown in logs (e.g. gateway-eu-1)")
	roles := fs.String("role", "", "comma-separated roles: publisher, auditor, compliance, admin")
	tenants := fs.String("tenant", "", "comma-separated tenants the key may use, or * for all")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl apikey create [flags]")
	if err := cliflag.Parse(fs, envPrefix, args[1:]); err != nil {
		return err
	}
	var rs []auth.Role
	for _, r := range strings.Split(*roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			rs = append(rs, auth.Role(r))
		}
	}
	ts, err := apiKeyTenants(*tenants)
	if err != nil {
		return err
	}
	if safe(*id) != *id || strings.ContainsRune(*id, ' ') {
		return fmt.Errorf("--id %s: a key name is shown in logs; use no spaces, control or invisible characters", safe(strconv.Quote(*id)))
	}
	key, entry, err := auth.NewKey(*id, rs, ts)
	if err != nil {
		return err
	}
	e, _ := json.Marshal(entry)
	fmt.Fprintf(os.Stderr, "API key (shown once; give it to the client, store it as a secret):\n")
	fmt.Println(key)
	fmt.Fprintf(os.Stderr, "add this entry to the \"keys\" list of the file passed to lineaged --api-keys:\n%s\n", e)
	return nil
}

// apiKeyTenants parses --tenant of apikey create: tenant names (lineage.ValidTenant), or * for
// all tenants. A name the ledger would never accept as a tenant would give a key that matches
// nothing, or, worse, looks like it grants something it does not.
func apiKeyTenants(list string) ([]string, error) {
	var ts []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
		case t == "*" || lineage.ValidTenant(t):
			ts = append(ts, t)
		default:
			return nil, fmt.Errorf("--tenant: %s is not a tenant name: tenants match ^[a-z0-9][a-z0-9_-]{0,62}$ (or give * for all tenants)", strconv.Quote(t))
		}
	}
	if slices.Contains(ts, "*") && len(ts) > 1 {
		return nil, errors.New("--tenant: * already means every tenant; give it alone")
	}
	return ts, nil
}

func runSourceKey(args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New("usage: lineagectl sourcekey create --tenant T --source-id ID --key-id KID --out FILE")
	}
	fs := flag.NewFlagSet("sourcekey create", flag.ContinueOnError)
	tenant := fs.String("tenant", "", "tenant of the enforcement point")
	source := fs.String("source-id", "", "the enforcement point's source id (records must name it)")
	keyID := fs.String("key-id", "", "key id, sent in the signature header")
	out := fs.String("out", "", "file for the private key (mode 0600; give it to the enforcement point)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl sourcekey create [flags]")
	if err := cliflag.Parse(fs, envPrefix, args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	entry := ingest.SourceKey{Tenant: *tenant, SourceID: *source, KeyID: *keyID, PublicKey: pub}
	if _, err := ingest.NewSourceKeys(ingest.SourceKeyFile{Keys: []ingest.SourceKey{entry}}); err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, base64.StdEncoding.EncodeToString(priv.Seed())); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	e, _ := json.Marshal(entry)
	fmt.Printf("private key seed written to %s\nadd this entry to the \"keys\" list of lineaged --source-keys:\n%s\n", *out, e)
	return nil
}
