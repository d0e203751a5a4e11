package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/query"
)

// runErase erases a subject through the API (POST /v1/erasures, compliance or admin role):
// lineaged destroys the subject's keys, purges the clear values from its index and records the
// erasure as a decision record (docs/ERASURE.md).
func runErase(args []string) error {
	fs := flag.NewFlagSet("erase", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	tenant := fs.String("tenant", "", "tenant of the subject")
	subject := fs.String("subject", "", "the subject's identifier (a user id, a reviewer id)")
	basis := fs.String("legal-basis", "", "legal basis, recorded; required when the subject has records inside the tenant's minimum retention (must not name the subject)")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl erase --tenant T --subject S [--legal-basis TEXT]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *tenant == "" || *subject == "" {
		return errors.New("--tenant and --subject are required")
	}
	b, err := post(*api, "/v1/erasures", query.ErasureRequest{Tenant: *tenant, Subject: *subject, LegalBasis: *basis})
	if err != nil {
		return err
	}
	var res query.ErasureResult
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("POST /v1/erasures: unexpected answer: %w", err)
	}
	fmt.Printf("erased in tenant %s: %d subject key(s) destroyed (%s), %d index rows purged, logged as record %s\n",
		safe(res.Tenant), len(res.KeyIDs), safe(strings.Join(res.KeyIDs, ",")), res.RecordsPurged, safe(res.RecordID))
	if res.WithinRetention {
		fmt.Println("the subject had records inside the minimum retention: erased on the legal basis given (recorded)")
	}
	return nil
}
