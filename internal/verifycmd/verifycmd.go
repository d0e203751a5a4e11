// Package verifycmd is the command code of the offline checks, shared by `lineagectl verify`
// and `lineagectl checkpoint` (cmd/lineagectl) and by the auditor's small binary
// cmd/lineage-verify, so that the two never diverge. It depends on the verify package and the
// standard library only (net/http for the optional online fetch), never on the server.
package verifycmd

import (
	"bytes"
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

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
	"golang.org/x/mod/sumdb/note"
)

// Env is what a command needs from the program that runs it.
type Env struct {
	// Prog names the program in usage lines ("lineagectl", "lineage-verify").
	Prog string
	// EnvPrefix is the prefix of the environment variables that set flags (cliflag).
	EnvPrefix string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// get fetches an API path with an optional API key and returns the body of a 2xx answer; an
// error answer becomes an error carrying the server's message. It behaves as lineagectl's
// own client (cmd/lineagectl/verify.go).
func get(api, path, apiKey string) ([]byte, error) {
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
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", http.MethodGet, path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", http.MethodGet, path, resp.Status)
	}
	return b, nil
}

// addAPIKeyFlag registers --api-key on a command that talks to the API.
func addAPIKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("api-key", "", "API key (lin_…) when lineaged requires authentication; prefer the LINEAGE_API_KEY environment variable")
}

// LoadVerifier reads the log's public key from a verifier string or a file holding one.
func LoadVerifier(vkey, file string) (note.Verifier, error) {
	switch {
	case vkey != "":
		return ledger.NewVerifier(vkey)
	case file != "":
		return ledger.ReadVerifierFile(file)
	}
	return nil, fmt.Errorf("the log's public key is required: --verifier NAME+HASH+KEY or --verifier-file FILE")
}

// Verify is `verify`: a record, fetched (--id) or saved (--proof), or an export bundle
// (verify BUNDLE.zip), checked with the log's public key.
func Verify(env Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return verifyBundleArgs(env, args) // verify BUNDLE.zip --verifier-file F
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	apiKey := addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	id := fs.String("id", "", "record id to fetch and verify")
	tenant := fs.String("tenant", "", "tenant of the record (needed when the id exists in several)")
	proofFile := fs.String("proof", "", "verify a saved answer of GET /v1/records/{id} instead of fetching one")
	save := fs.String("save", "", "save the fetched answer to this file (verify it later with --proof, offline)")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key (e.g. data/keys/log.key.pub)")
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" verify (--id ID | --proof FILE) (--verifier KEY | --verifier-file FILE)")
	if err := cliflag.Parse(fs, env.EnvPrefix, args); err != nil {
		return err
	}
	v, err := LoadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	if fs.NArg() == 1 { // verify --verifier-file F BUNDLE.zip
		return VerifyBundle(fs.Arg(0), v)
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
		raw, err = get(*api, path, *apiKey)
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
	rp, err := verify.DecodeRecordProof(raw)
	if err != nil {
		return err
	}
	cp, err := verify.VerifyRecordProof(rp, v)
	if err != nil {
		return err
	}
	id2 := ""
	if rp.Record != nil {
		id2 = rp.Record.Tenant + "/" + rp.Record.ID
	}
	fmt.Printf("OK: record %s is entry %d of log %q, included in the checkpoint of size %d (root %x) signed by %s\n",
		safe(id2), rp.Index, cp.Origin, cp.Size, cp.Hash, safe(v.Name()))
	return nil
}

// verifyBundleArgs is `verify BUNDLE [--verifier-file FILE | --verifier KEY]` (the bundle may
// come before or after the flags).
func verifyBundleArgs(env Env, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key (e.g. data/keys/log.key.pub)")
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" verify BUNDLE.zip (--verifier KEY | --verifier-file FILE)")
	path := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	if err := cliflag.Parse(fs, env.EnvPrefix, args); err != nil {
		return err
	}
	if path == "" && fs.NArg() > 0 {
		path = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if path == "" {
		return errors.New("name the bundle to verify")
	}
	v, err := LoadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	return VerifyBundle(path, v)
}

// VerifyBundle checks a bundle with v and prints what was checked, or every problem found.
func VerifyBundle(path string, v note.Verifier) error {
	rep, err := verify.VerifyBundle(path, v)
	if m := rep.Manifest; m != nil {
		sys := m.AISystem
		if sys == "" {
			sys = "all AI systems"
		}
		fmt.Printf("bundle %s: export %s, %s of tenant %s (%s), %s – %s, created %s for %s\n", safe(path), safe(m.ExportID), safeV(m.Kind), safe(m.Tenant), safe(sys),
			m.From.Format(time.RFC3339), m.To.Format(time.RFC3339), m.Created.Format(time.RFC3339), safe(m.RequestedBy))
	}
	if err != nil {
		var ve *verify.VerifyError
		if !errors.As(err, &ve) {
			return err
		}
		fmt.Fprintf(os.Stderr, "FAILED: %d problem(s):\n", len(ve.Problems)+ve.Unlisted)
		for _, p := range ve.Problems {
			fmt.Fprintf(os.Stderr, "  %s\n", safeV(p))
		}
		if ve.Unlisted > 0 {
			fmt.Fprintf(os.Stderr, "  … and %d more of the same kinds\n", ve.Unlisted)
		}
		return fmt.Errorf("bundle %s does not verify", safe(path))
	}
	cp := rep.Checkpoint
	fmt.Printf("OK: %d files match the manifest signed by %s; %d records verified with inclusion proofs against the checkpoint of size %d (root %x); %d table citations resolved\n",
		rep.Files, safe(v.Name()), rep.Records, cp.Size, cp.Hash, rep.Citations)
	return nil
}

// Checkpoint is `checkpoint`: fetch the latest checkpoint, verify its signature, and its
// consistency with an older one.
func Checkpoint(env Env, args []string) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	apiKey := addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key")
	older := fs.String("since", "", "a checkpoint file trusted earlier: prove the latest one extends it")
	save := fs.String("save", "", "save the latest checkpoint to this file")
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" checkpoint (--verifier KEY | --verifier-file FILE) [--since OLD] [--save FILE]")
	if err := cliflag.Parse(fs, env.EnvPrefix, args); err != nil {
		return err
	}
	v, err := LoadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	raw, err := get(*api, "/v1/checkpoint", *apiKey)
	if err != nil {
		return err
	}
	cp, err := verify.OpenCheckpoint(raw, v)
	if err != nil {
		return err
	}
	fmt.Printf("OK: checkpoint of %q, size %d, root %x\n", cp.Origin, cp.Size, cp.Hash)
	if *older != "" {
		oraw, err := os.ReadFile(*older)
		if err != nil {
			return err
		}
		old, err := verify.OpenCheckpoint(oraw, v)
		if err != nil {
			return fmt.Errorf("older checkpoint: %w", err)
		}
		b, err := get(*api, fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.Size, cp.Size), *apiKey)
		if err != nil {
			return err
		}
		proof, err := verify.DecodeConsistencyProof(b)
		if err != nil {
			return err
		}
		if err := verify.VerifyConsistency(old, cp, proof); err != nil {
			return err
		}
		fmt.Printf("OK: consistent with the older checkpoint of size %d\n", old.Size)
	}
	if *save != "" {
		return os.WriteFile(*save, raw, 0o644)
	}
	return nil
}

// Consistency is `consistency` (cmd/lineage-verify only): two saved checkpoint files, both
// signed by the log's key, and a consistency proof between them, saved (--proof, the answer of
// GET /v1/proofs/consistency) or fetched (--api).
func Consistency(env Env, args []string) error {
	fs := flag.NewFlagSet("consistency", flag.ContinueOnError)
	apiKey := addAPIKeyFlag(fs)
	api := fs.String("api", "", "Lineage query API to fetch the proof from, when --proof is not given")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key")
	oldFile := fs.String("old", "", "the older checkpoint file")
	newFile := fs.String("new", "", "the newer checkpoint file")
	proofFile := fs.String("proof", "", "a saved answer of GET /v1/proofs/consistency?from=OLD&to=NEW")
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" consistency --old FILE --new FILE (--proof FILE | --api URL) (--verifier KEY | --verifier-file FILE)")
	if err := cliflag.Parse(fs, env.EnvPrefix, args); err != nil {
		return err
	}
	if *oldFile == "" || *newFile == "" {
		return errors.New("give --old and --new")
	}
	v, err := LoadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	open := func(what, file string) (verify.Checkpoint, error) {
		raw, err := os.ReadFile(file)
		if err != nil {
			return verify.Checkpoint{}, err
		}
		cp, err := verify.OpenCheckpoint(raw, v)
		if err != nil {
			return cp, fmt.Errorf("%s checkpoint: %w", what, err)
		}
		return cp, nil
	}
	old, err := open("older", *oldFile)
	if err != nil {
		return err
	}
	cp, err := open("newer", *newFile)
	if err != nil {
		return err
	}
	var b []byte
	switch {
	case *proofFile != "":
		b, err = os.ReadFile(*proofFile)
	case *api != "":
		b, err = get(*api, fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.Size, cp.Size), *apiKey)
	default:
		return errors.New("give --proof or --api")
	}
	if err != nil {
		return err
	}
	proof, err := verify.DecodeConsistencyProof(b)
	if err != nil {
		return err
	}
	if err := verify.VerifyConsistency(old, cp, proof); err != nil {
		return err
	}
	fmt.Printf("OK: the checkpoint of %q of size %d (root %x) extends the one of size %d (root %x)\n", cp.Origin, cp.Size, cp.Hash, old.Size, old.Hash)
	return nil
}

// Answer is `answer` (cmd/lineage-verify only): a lineage answer, saved (--file, as
// `lineagectl lineage --json` prints it) or fetched (--api), checked offline with
// verify.VerifyAnswer.
func Answer(env Env, args []string) error {
	fs := flag.NewFlagSet("answer", flag.ContinueOnError)
	apiKey := addAPIKeyFlag(fs)
	api := fs.String("api", "", "Lineage query API to fetch the answer from, when --file is not given")
	tenant := fs.String("tenant", "", "tenant, when fetching")
	kind := fs.String("kind", "", "answer kind: "+strings.Join(verify.AnswerKinds, ", "))
	subject := fs.String("subject", "", "the user, agent, action or policy id asked about")
	file := fs.String("file", "", "a saved answer of GET /v1/lineage/{kind}/{subject}")
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file holding the log's public key")
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" answer --kind K --subject S (--file FILE | --api URL --tenant T) (--verifier KEY | --verifier-file FILE)")
	if err := cliflag.Parse(fs, env.EnvPrefix, args); err != nil {
		return err
	}
	if *kind == "" || *subject == "" {
		return errors.New("give --kind and --subject")
	}
	v, err := LoadVerifier(*vkey, *vfile)
	if err != nil {
		return err
	}
	var raw []byte
	switch {
	case *file != "":
		raw, err = os.ReadFile(*file)
	case *api != "":
		q := url.Values{"tenant": {*tenant}}
		raw, err = get(*api, "/v1/lineage/"+url.PathEscape(*kind)+"/"+url.PathEscape(*subject)+"?"+q.Encode(), *apiKey)
	default:
		return errors.New("give --file or --api")
	}
	if err != nil {
		return err
	}
	res, err := verify.VerifyAnswer(*kind, *subject, bytes.TrimSpace(raw), v)
	if err != nil {
		return err
	}
	fmt.Printf("VERIFIED: %d actions, each in the log of %q at the checkpoint of size %d (root %x), matching its ledger entry\n",
		res.Actions, res.Checkpoint.Origin, res.Checkpoint.Size, res.Checkpoint.Hash)
	return nil
}

// safe is lineage.Printable: everything printed that comes from a record, the API, a bundle or
// a file goes through it (as in cmd/lineagectl/safe.go).
func safe(s string) string { return lineage.Printable(s) }

// safeV shows any value as %v would, made printable.
func safeV(v any) string { return lineage.Printable(fmt.Sprint(v)) }
