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

	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/verifycmd"
	"github.com/lineage-audit/lineage/verify"
)

// apiKey is the bearer credential sent to the API (--api-key or LINEAGE_API_KEY).
var apiKey string

// addAPIKeyFlag registers --api-key on a command that talks to the API.
func addAPIKeyFlag(fs *flag.FlagSet) {
	fs.StringVar(&apiKey, "api-key", "", verifycmd.APIKeyUsage)
}

// get fetches an API path and returns the body, turning error answers into errors.
func get(api, path string) ([]byte, error) { return call(http.MethodGet, api, path, nil, 256<<20) }

// call sends one API request with the API key, and returns the body of a 2xx answer; an error
// answer becomes an error carrying the server's message. The client is the one of
// internal/verifycmd, so that lineagectl and lineage-verify talk to the API alike.
func call(method, api, path string, body []byte, limit int64) ([]byte, error) {
	return verifycmd.Call(method, api, path, apiKey, body, limit)
}

// runVerify and runCheckpoint are the shared command code of internal/verifycmd, which the
// auditor's binary cmd/lineage-verify runs too.
func runVerify(args []string) error { return verifycmd.Verify(verifyEnv, args) }

func runCheckpoint(args []string) error { return verifycmd.Checkpoint(verifyEnv, args) }

var verifyEnv = verifycmd.Env{Prog: "lineagectl", EnvPrefix: envPrefix}

func runLineage(args []string) error {
	fs := flag.NewFlagSet("lineage", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	tenant := fs.String("tenant", "", "tenant")
	user := fs.String("user", "", "user id: the user → agent → sub-agent → action tree")
	agent := fs.String("agent", "", "agent id: the users it acted for and its actions")
	action := fs.String("action", "", "record id: the chain up to the authorizing person")
	policy := fs.String("policy", "", "policy id: its decisions (counts and examples)")
	from := fs.String("from", "", "window start (RFC 3339, inclusive)")
	to := fs.String("to", "", "window end (RFC 3339, exclusive)")
	effect := fs.String("effect", "", "only these effects (comma-separated: allow,deny,modify,escalate)")
	actionType := fs.String("action-type", "", "only these action types (comma-separated)")
	limit := fs.Int("limit", 0, "actions per page (default 1000)")
	cursor := fs.String("cursor", "", "continue from a previous answer's next_cursor")
	doVerify := fs.Bool("verify", false, "verify the whole answer offline: checkpoint signature, every inclusion proof, every action against its leaf")
	vkey := fs.String("verifier", "", "the log's public key, for --verify")
	vfile := fs.String("verifier-file", "", "file holding the log's public key, for --verify")
	policyFile := fs.String("witness-policy", "", "witness policy file, for --verify: fail unless the answer's checkpoint carries valid cosignatures from its quorum (docs/PROOFS.md)")
	asJSON := fs.Bool("json", false, "print the raw JSON answer")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl lineage --tenant T (--user U | --agent A | --action ID | --policy P) [flags]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	kind, subject := "", ""
	for _, x := range []struct{ k, v string }{{"users", *user}, {"agents", *agent}, {"actions", *action}, {"policies", *policy}} {
		if x.v != "" {
			if kind != "" {
				return errors.New("give one of --user, --agent, --action or --policy")
			}
			kind, subject = x.k, x.v
		}
	}
	if kind == "" {
		return errors.New("give one of --user, --agent, --action or --policy")
	}
	q := queryParams(*tenant, map[string]string{"from": *from, "to": *to, "cursor": *cursor},
		map[string]string{"effect": *effect, "action_type": *actionType}, *limit, *doVerify)
	b, err := get(*api, "/v1/lineage/"+kind+"/"+url.PathEscape(subject)+"?"+q.Encode())
	if err != nil {
		return err
	}
	if *doVerify {
		v, err := loadVerifier(*vkey, *vfile)
		if err != nil {
			return err
		}
		res, err := verify.VerifyAnswer(kind, subject, b, v)
		if err != nil {
			return err
		}
		witnesses := "its cosignatures not checked (no --witness-policy)"
		if *policyFile != "" {
			pol, err := verify.LoadWitnessPolicy(*policyFile)
			if err != nil {
				return err
			}
			st, err := pol.Status(res.Checkpoint.Note)
			if err != nil {
				return err
			}
			if !st.Satisfied {
				return fmt.Errorf("%w (%s): %s", verify.ErrWitnessQuorum, st.Quorum, st.Summary())
			}
			witnesses = "witnessed, quorum " + st.Quorum + ": " + st.Summary()
		}
		defer fmt.Fprintf(os.Stderr, "VERIFIED: %d actions, each in the log of %q at the checkpoint of size %d (root %x), matching its ledger entry; the checkpoint is %s\n",
			res.Actions, safe(res.Checkpoint.Origin), res.Checkpoint.Size, res.Checkpoint.Hash, safe(witnesses))
	}
	if *asJSON {
		_, err := os.Stdout.Write(append(b, '\n'))
		return err
	}
	return printAnswer(os.Stdout, kind, b)
}

// queryParams builds the query of a lineage or findings request: the tenant, the single-valued
// parameters that are set, each comma-separated list as repeated parameters, the page size when
// positive, and proofs=false unless the answer is to be verified.
func queryParams(tenant string, single, lists map[string]string, limit int, withProofs bool) url.Values {
	q := url.Values{"tenant": {tenant}}
	for k, v := range single {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	for k, v := range lists {
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				q.Add(k, x)
			}
		}
	}
	if !withProofs {
		q.Set("proofs", "false")
	}
	return q
}

// printAnswer prints a lineage answer as a tree for a person; every record-derived string goes
// through the helpers of safe.go.
func printAnswer(w io.Writer, kind string, b []byte) error {
	var head verify.Answer
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	switch kind {
	case "users":
		var ul verify.UserLineage
		if err := json.Unmarshal(b, &ul); err != nil {
			return err
		}
		if ul.UserTree == nil {
			return errors.New("the answer holds no user tree")
		}
		fmt.Fprintf(w, "%s (issuer %s), tenant %s: %d actions, checkpoint size %d\n", safe(ul.User.ID), safe(ul.User.Issuer), safe(ul.Tenant), ul.Actions, ul.CheckpointSize)
		for _, a := range ul.Agents {
			printAgent(w, a, "  ")
		}
	case "agents":
		var al verify.AgentLineage
		if err := json.Unmarshal(b, &al); err != nil {
			return err
		}
		fmt.Fprintf(w, "agent %s, tenant %s: %d actions for %d users, checkpoint size %d\n", safe(al.Agent), safe(al.Tenant), len(al.Actions), len(al.Users), al.CheckpointSize)
		for _, u := range al.Users {
			fmt.Fprintf(w, "  for %s (issuer %s): %d actions\n", safe(u.ID), safe(u.Issuer), u.Actions)
		}
		for _, x := range al.Actions {
			printAction(w, x, "  ")
		}
	case "actions":
		var ch verify.ActionChain
		if err := json.Unmarshal(b, &ch); err != nil {
			return err
		}
		fmt.Fprintf(w, "authorized by %s (issuer %s), tenant %s, complete chain %v\n", safe(ch.AuthorizedBy.ID), safe(ch.AuthorizedBy.Issuer), safe(ch.Tenant), ch.Complete)
		if d := ch.Delegation; d != nil {
			fmt.Fprintf(w, "  delegation %s (%s) scope %s, actors %s\n", safe(d.TokenID), safe(d.Mechanism), safeList(d.Scope), safeList(d.Actors))
		}
		for i, x := range ch.Chain {
			printAction(w, x, strings.Repeat("  ", i+1))
		}
		for _, x := range ch.Oversight {
			if h := x.HumanOversight; h != nil {
				fmt.Fprintf(w, "  human oversight by %s: %s at %s (record %s)\n", safe(h.Reviewer.ID), safe(h.Outcome), safe(h.Time), safe(x.ID))
			}
		}
	case "policies":
		var pd verify.PolicyDecisions
		if err := json.Unmarshal(b, &pd); err != nil {
			return err
		}
		fmt.Fprintf(w, "policy %s, tenant %s: %d decisions %s, versions %s\n", safe(pd.Policy), safe(pd.Tenant), pd.Stats.Total, safeCounts(pd.Stats.ByEffect), safeCounts(pd.Stats.ByVersion))
		for _, x := range pd.Examples {
			printAction(w, x, "  ")
		}
	}
	for _, f := range head.Flags {
		fmt.Fprintf(w, "FLAG %s: %s\n", safe(f.Kind), safe(f.Detail))
	}
	if head.NextCursor != "" {
		fmt.Fprintf(w, "more: --cursor %s\n", safe(head.NextCursor))
	}
	return nil
}

func printAction(w io.Writer, x *verify.ActionNode, indent string) {
	fmt.Fprintf(w, "%s%s %-8s %s %s  (agent %s, policy %s@%s, log #%d, id %s)\n", indent, safe(x.Time), safe(x.Decision.Effect), safe(x.Action.Type), safe(x.Action.Target),
		safe(x.Agent), safe(x.Decision.Policy.ID), safe(x.Decision.Policy.Version), x.LogIndex, safe(x.ID))
}

func printAgent(w io.Writer, a *verify.AgentNode, indent string) {
	fmt.Fprintf(w, "%s└ agent %s %s\n", indent, safe(a.ID), safeList(a.Roles))
	for _, x := range a.Actions {
		printAction(w, x, indent+"    ")
	}
	for _, s := range a.Agents {
		printAgent(w, s, indent+"    ")
	}
}
