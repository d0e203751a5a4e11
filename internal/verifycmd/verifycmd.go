// Package verifycmd is the command code of the offline checks, shared by `lineagectl verify`
// and `lineagectl checkpoint` (cmd/lineagectl) and by the auditor's small binary
// cmd/lineage-verify, so that the two never diverge. It depends on the verify package and the
// standard library only (net/http for the optional online fetch), never on the server. Its API
// client (Call) is lineagectl's too.
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
	// Stdout receives what the commands print (os.Stdout when nil).
	Stdout io.Writer
}

// out is where a command prints.
func (e Env) out() io.Writer {
	if e.Stdout != nil {
		return e.Stdout
	}
	return os.Stdout
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Call sends one API request with an optional API key (and a JSON body, when body is not nil)
// and returns the body of a 2xx answer, read up to limit bytes; an error answer becomes an error
// carrying the server's message. It is lineagectl's API client too (cmd/lineagectl/verify.go).
func Call(method, api, path, apiKey string, body []byte, limit int64) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, strings.TrimRight(api, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return b, nil
}

// APIKeyUsage is the help of --api-key, on every command that talks to the API.
const APIKeyUsage = "API key (lin_…) when lineaged requires authentication; prefer the LINEAGE_API_KEY environment variable"

// apiFlags are --api and --api-key of a command that talks to the API.
type apiFlags struct{ url, key *string }

// addAPIFlags registers --api-key and --api, with the default and help of --api given.
func addAPIFlags(fs *flag.FlagSet, def, usage string) apiFlags {
	key := fs.String("api-key", "", APIKeyUsage)
	return apiFlags{url: fs.String("api", def, usage), key: key}
}

// get fetches an API path and returns the body of a 2xx answer (Call).
func (a apiFlags) get(path string) ([]byte, error) {
	return Call(http.MethodGet, *a.url, path, *a.key, nil, 256<<20)
}

// savedOrFetched reads a saved answer from file when one is named, or else, when fetch is set,
// fetches path from the API; with neither, it fails with the error missing.
func (a apiFlags) savedOrFetched(file string, fetch bool, path, missing string) ([]byte, error) {
	switch {
	case file != "":
		return ledger.ReadFileLimit(file, maxSavedFile)
	case fetch:
		return a.get(path)
	}
	return nil, errors.New(missing)
}

// Help of --verifier-file.
const (
	verifierFileUsage        = "file holding the log's public key"
	verifierFileUsageExample = verifierFileUsage + " (e.g. data/keys/log.key.pub)"
)

// addTrustFlags registers --verifier and --verifier-file (with the help given) and
// --witness-policy, and returns what loads, once the flags are parsed, the log key they name
// (LoadVerifier) and then the witness policy (nil when none is named).
func addTrustFlags(fs *flag.FlagSet, fileUsage string) func() (note.Verifier, *verify.WitnessPolicy, error) {
	vkey := fs.String("verifier", "", "the log's public key (name+hash+base64)")
	vfile := fs.String("verifier-file", "", fileUsage)
	policy := fs.String("witness-policy", "", witnessPolicyUsage)
	return func() (note.Verifier, *verify.WitnessPolicy, error) {
		v, err := LoadVerifier(*vkey, *vfile)
		if err != nil {
			return nil, nil, err
		}
		if *policy == "" {
			return v, nil, nil
		}
		pol, err := verify.LoadWitnessPolicy(*policy)
		if err != nil {
			return nil, nil, err
		}
		return v, pol, nil
	}
}

// maxSavedFile bounds a saved answer or proof read from a file (as the API client bounds an
// answer).
const maxSavedFile = 256 << 20

// witnessPolicyUsage is the help of --witness-policy.
const witnessPolicyUsage = "witness policy file (witness cosignature/v1 keys and the quorum, see docs/PROOFS.md): fail unless every checkpoint checked carries valid cosignatures from the quorum"

// witnessed checks a checkpoint (opened, its log signature verified) against the witness
// policy pol and prints who cosigned; it fails when the quorum is not met or a cosignature of
// a policy witness does not verify. Without a policy it only says how many cosignatures the
// checkpoint carries, unchecked. what names the checkpoint in the output ("checkpoint",
// "older checkpoint").
func witnessed(w io.Writer, what string, cp verify.Checkpoint, v note.Verifier, pol *verify.WitnessPolicy) error {
	if pol == nil {
		others, err := verify.OtherSignatures(cp.Note, v)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		names := make([]string, len(others))
		for i, s := range others {
			names[i] = s.Name
		}
		by := ""
		if len(names) > 0 {
			by = " (by " + strings.Join(names, ", ") + ")"
		}
		fmt.Fprintf(w, "NOTE: the %s carries %d cosignature(s)%s, not checked: no --witness-policy given\n", what, len(others), safe(by))
		return nil
	}
	st, err := pol.Status(cp.Note)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !st.Satisfied {
		return fmt.Errorf("%s of size %d: %w (%s): %s", what, cp.Size, verify.ErrWitnessQuorum, st.Quorum, st.Summary())
	}
	fmt.Fprintf(w, "OK: the %s is witnessed, quorum %s: %s\n", what, st.Quorum, st.Summary())
	return nil
}

// parse parses args into fs with the environment overrides of env (cliflag); -h prints
// "usage: PROG synopsis" and the flags.
func parse(fs *flag.FlagSet, env Env, synopsis string, args []string) error {
	fs.Usage = cliflag.Usage(fs, env.EnvPrefix, "usage: "+env.Prog+" "+synopsis)
	return cliflag.Parse(fs, env.EnvPrefix, args)
}

// openCheckpointFile reads a saved checkpoint and verifies its signature; what ("older",
// "newer") names it in the error.
func openCheckpointFile(what, file string, v note.Verifier) (verify.Checkpoint, error) {
	raw, err := ledger.ReadFileLimit(file, verify.MaxCheckpointSize)
	if err != nil {
		return verify.Checkpoint{}, err
	}
	cp, err := verify.OpenCheckpoint(raw, v)
	if err != nil {
		return cp, fmt.Errorf("%s checkpoint: %w", what, err)
	}
	return cp, nil
}

// consistencyPath is the API path of the consistency proof between old and cp.
func consistencyPath(old, cp verify.Checkpoint) string {
	return fmt.Sprintf("/v1/proofs/consistency?from=%d&to=%d", old.Size, cp.Size)
}

// checkConsistency verifies that cp extends old with a consistency proof, an answer of
// GET /v1/proofs/consistency.
func checkConsistency(old, cp verify.Checkpoint, proof []byte) error {
	p, err := verify.DecodeConsistencyProof(proof)
	if err != nil {
		return err
	}
	return verify.VerifyConsistency(old, cp, p)
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

// Proof formats of `verify --format`.
const (
	formatJSON      = "json"
	formatTLogProof = "tlog-proof"
)

// maxEntryFile bounds a ledger entry given with --entry.
const maxEntryFile = 1 << 20

// Verify is `verify`: a record, fetched (--id) or saved (--proof: the JSON answer of
// GET /v1/records/{id} or a C2SP tlog-proof), or an export bundle (verify BUNDLE.zip), checked
// with the log's public key and, with --witness-policy, the witnesses' cosignatures.
func Verify(env Env, args []string) error {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return verifyBundleArgs(env, args) // verify BUNDLE.zip --verifier-file F
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	api := addAPIFlags(fs, "http://127.0.0.1:8080", "Lineage query API")
	id := fs.String("id", "", "record id to fetch and verify")
	tenant := fs.String("tenant", "", "tenant of the record (needed when the id exists in several)")
	proofFile := fs.String("proof", "", "verify a saved proof instead of fetching one: the JSON answer of GET /v1/records/{id} or a C2SP tlog-proof (.tlog-proof)")
	save := fs.String("save", "", "save the fetched proof to this file (verify it later with --proof, offline); a name ending in .tlog-proof saves a C2SP tlog-proof")
	format := fs.String("format", "", "format of the fetched proof: json or tlog-proof (default: tlog-proof when --save ends in .tlog-proof, else json)")
	entryFile := fs.String("entry", "", "the exact ledger entry a tlog-proof proves, when the proof has no extra line (or to check it is this one)")
	loadTrust := addTrustFlags(fs, verifierFileUsageExample)
	if err := parse(fs, env, "verify (--id ID | --proof FILE) (--verifier KEY | --verifier-file FILE) [--witness-policy FILE]", args); err != nil {
		return err
	}
	v, pol, err := loadTrust()
	if err != nil {
		return err
	}
	if fs.NArg() == 1 { // verify --verifier-file F BUNDLE.zip
		return verifyBundle(env, fs.Arg(0), v, pol)
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(1))
	}
	f := *format
	if f == "" {
		f = formatJSON
		if strings.HasSuffix(*save, ".tlog-proof") {
			f = formatTLogProof
		}
	}
	if f != formatJSON && f != formatTLogProof {
		return fmt.Errorf("--format %q: want json or tlog-proof", f)
	}
	q := url.Values{}
	if *tenant != "" {
		q.Set("tenant", *tenant)
	}
	if f == formatTLogProof {
		q.Set("format", formatTLogProof)
	}
	path := "/v1/records/" + url.PathEscape(*id)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	raw, err := api.savedOrFetched(*proofFile, *id != "", path, "give --id or --proof")
	if err != nil {
		return err
	}
	if *proofFile == "" && f == formatTLogProof && !verify.IsTLogProof(raw) {
		return fmt.Errorf("GET %s: the answer is not a C2SP tlog-proof", path)
	}
	var entry []byte
	if *entryFile != "" {
		if !verify.IsTLogProof(raw) {
			return errors.New("--entry applies to a C2SP tlog-proof only (a JSON answer holds its entry)")
		}
		if entry, err = ledger.ReadFileLimit(*entryFile, maxEntryFile); err != nil {
			return err
		}
	}
	// Verify before saving: a proof that does not verify is not kept as evidence.
	if verify.IsTLogProof(raw) {
		err = verifyTLogProof(env, raw, entry, v, pol)
	} else {
		err = verifyRecordJSON(env, raw, v, pol)
	}
	if err != nil {
		return err
	}
	if *save != "" {
		if err := os.WriteFile(*save, raw, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// verifyRecordJSON verifies a JSON answer of GET /v1/records/{id}.
func verifyRecordJSON(env Env, raw []byte, v note.Verifier, pol *verify.WitnessPolicy) error {
	rp, err := verify.DecodeRecordProof(raw)
	if err != nil {
		return err
	}
	cp, err := verify.VerifyRecordProof(rp, v)
	if err != nil {
		return err
	}
	if err := witnessed(env.out(), "checkpoint", cp, v, pol); err != nil {
		return err
	}
	id := ""
	if rp.Record != nil {
		id = rp.Record.Tenant + "/" + rp.Record.ID
	}
	fmt.Fprintf(env.out(), "OK: record %s is entry %d of log %q, included in the checkpoint of size %d (root %x) signed by %s\n",
		safe(id), rp.Index, safe(cp.Origin), cp.Size, cp.Hash, safe(v.Name()))
	// A sealed entry (docs/ERASURE.md): each clear value shown was checked against its
	// commitment in the leaf; a field without one is erased.
	if _, _, fields, err := verify.LeafRecord(rp.Leaf, rp.Openings); err == nil {
		for _, f := range fields {
			fmt.Fprintf(env.out(), "  sealed field %s\n", safe(f.String()))
		}
	}
	return nil
}

// verifyTLogProof verifies a C2SP tlog-proof, with the entry in its extra line or given.
func verifyTLogProof(env Env, raw, entry []byte, v note.Verifier, pol *verify.WitnessPolicy) error {
	p, err := verify.DecodeTLogProof(raw)
	if err != nil {
		return err
	}
	res, err := verify.VerifyTLogProof(p, entry, v)
	if err != nil {
		return err
	}
	if err := witnessed(env.out(), "checkpoint", res.Checkpoint, v, pol); err != nil {
		return err
	}
	r := res.Envelope.Record
	cp := res.Checkpoint
	fmt.Fprintf(env.out(), "OK: record %s is entry %d of log %q, included in the checkpoint of size %d (root %x) signed by %s (C2SP tlog-proof)\n",
		safe(r.Tenant+"/"+r.ID), res.Index, safe(cp.Origin), cp.Size, cp.Hash, safe(v.Name()))
	return nil
}

// verifyBundleArgs is `verify BUNDLE [--verifier-file FILE | --verifier KEY]` (the bundle may
// come before or after the flags).
func verifyBundleArgs(env Env, args []string) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	loadTrust := addTrustFlags(fs, verifierFileUsageExample)
	path := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	if err := parse(fs, env, "verify BUNDLE.zip (--verifier KEY | --verifier-file FILE) [--witness-policy FILE]", args); err != nil {
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
	v, pol, err := loadTrust()
	if err != nil {
		return err
	}
	return verifyBundle(env, path, v, pol)
}

// VerifyBundle checks a bundle with v and prints what was checked, or every problem found.
func VerifyBundle(path string, v note.Verifier) error {
	return verifyBundle(Env{}, path, v, nil)
}

// verifyBundle checks a bundle with v and, when pol is set, its checkpoint's cosignatures.
func verifyBundle(env Env, path string, v note.Verifier, pol *verify.WitnessPolicy) error {
	w := env.out()
	rep, err := verify.VerifyBundleWith(path, v, verify.BundleOptions{Witnesses: pol})
	if m := rep.Manifest; m != nil {
		sys := m.AISystem
		if sys == "" {
			sys = "all AI systems"
		}
		fmt.Fprintf(w, "bundle %s: export %s, %s of tenant %s (%s), %s – %s, created %s for %s\n", safe(path), safe(m.ExportID), safeV(m.Kind), safe(m.Tenant), safe(sys),
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
	if st := rep.Witnesses; st != nil {
		fmt.Fprintf(w, "OK: the checkpoint is witnessed, quorum %s: %s\n", st.Quorum, st.Summary())
	} else {
		fmt.Fprintf(w, "NOTE: the checkpoint carries %d cosignature(s), not checked: no --witness-policy given\n", rep.OtherSignatures)
	}
	fmt.Fprintf(w, "OK: %d files match the manifest signed by %s; %d records verified with inclusion proofs against the checkpoint of size %d (root %x); %d table citations resolved\n",
		rep.Files, safe(v.Name()), rep.Records, cp.Size, cp.Hash, rep.Citations)
	if c := rep.Sealed; c != nil {
		fmt.Fprintf(w, "OK: sealed personal fields at export time: %d clear (%d subject keys), each opening checked against its commitment in the log; %d erased (%d subject keys)\n",
			c.ClearFields, c.ClearKeys, c.ErasedFields, c.ErasedKeys)
	}
	return nil
}

// Checkpoint is `checkpoint`: fetch the latest checkpoint, verify its signature, and its
// consistency with an older one.
func Checkpoint(env Env, args []string) error {
	fs := flag.NewFlagSet("checkpoint", flag.ContinueOnError)
	api := addAPIFlags(fs, "http://127.0.0.1:8080", "Lineage query API")
	loadTrust := addTrustFlags(fs, verifierFileUsage)
	older := fs.String("since", "", "a checkpoint file trusted earlier: prove the latest one extends it")
	save := fs.String("save", "", "save the latest checkpoint to this file")
	if err := parse(fs, env, "checkpoint (--verifier KEY | --verifier-file FILE) [--witness-policy FILE] [--since OLD] [--save FILE]", args); err != nil {
		return err
	}
	v, pol, err := loadTrust()
	if err != nil {
		return err
	}
	w := env.out()
	raw, err := api.get("/v1/checkpoint")
	if err != nil {
		return err
	}
	cp, err := verify.OpenCheckpoint(raw, v)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "OK: checkpoint of %q, size %d, root %x\n", safe(cp.Origin), cp.Size, cp.Hash)
	if err := witnessed(w, "checkpoint", cp, v, pol); err != nil {
		return err
	}
	if *older != "" {
		old, err := openCheckpointFile("older", *older, v)
		if err != nil {
			return err
		}
		b, err := api.get(consistencyPath(old, cp))
		if err != nil {
			return err
		}
		if err := checkConsistency(old, cp, b); err != nil {
			return err
		}
		fmt.Fprintf(w, "OK: consistent with the older checkpoint of size %d\n", old.Size)
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
	api := addAPIFlags(fs, "", "Lineage query API to fetch the proof from, when --proof is not given")
	loadTrust := addTrustFlags(fs, verifierFileUsage)
	oldFile := fs.String("old", "", "the older checkpoint file")
	newFile := fs.String("new", "", "the newer checkpoint file")
	proofFile := fs.String("proof", "", "a saved answer of GET /v1/proofs/consistency?from=OLD&to=NEW")
	if err := parse(fs, env, "consistency --old FILE --new FILE (--proof FILE | --api URL) (--verifier KEY | --verifier-file FILE) [--witness-policy FILE]", args); err != nil {
		return err
	}
	if *oldFile == "" || *newFile == "" {
		return errors.New("give --old and --new")
	}
	v, pol, err := loadTrust()
	if err != nil {
		return err
	}
	w := env.out()
	old, err := openCheckpointFile("older", *oldFile, v)
	if err != nil {
		return err
	}
	cp, err := openCheckpointFile("newer", *newFile, v)
	if err != nil {
		return err
	}
	if err := witnessed(w, "older checkpoint", old, v, pol); err != nil {
		return err
	}
	if err := witnessed(w, "newer checkpoint", cp, v, pol); err != nil {
		return err
	}
	b, err := api.savedOrFetched(*proofFile, *api.url != "", consistencyPath(old, cp), "give --proof or --api")
	if err != nil {
		return err
	}
	if err := checkConsistency(old, cp, b); err != nil {
		return err
	}
	fmt.Fprintf(w, "OK: the checkpoint of %q of size %d (root %x) extends the one of size %d (root %x)\n", safe(cp.Origin), cp.Size, cp.Hash, old.Size, old.Hash)
	return nil
}

// Answer is `answer` (cmd/lineage-verify only): a lineage answer, saved (--file, as
// `lineagectl lineage --json` prints it) or fetched (--api), checked offline with
// verify.VerifyAnswer.
func Answer(env Env, args []string) error {
	fs := flag.NewFlagSet("answer", flag.ContinueOnError)
	api := addAPIFlags(fs, "", "Lineage query API to fetch the answer from, when --file is not given")
	tenant := fs.String("tenant", "", "tenant, when fetching")
	kind := fs.String("kind", "", "answer kind: "+strings.Join(verify.AnswerKinds, ", "))
	subject := fs.String("subject", "", "the user, agent, action or policy id asked about")
	file := fs.String("file", "", "a saved answer of GET /v1/lineage/{kind}/{subject}")
	loadTrust := addTrustFlags(fs, verifierFileUsage)
	if err := parse(fs, env, "answer --kind K --subject S (--file FILE | --api URL --tenant T) (--verifier KEY | --verifier-file FILE) [--witness-policy FILE]", args); err != nil {
		return err
	}
	if *kind == "" || *subject == "" {
		return errors.New("give --kind and --subject")
	}
	v, pol, err := loadTrust()
	if err != nil {
		return err
	}
	q := url.Values{"tenant": {*tenant}}
	path := "/v1/lineage/" + url.PathEscape(*kind) + "/" + url.PathEscape(*subject) + "?" + q.Encode()
	raw, err := api.savedOrFetched(*file, *api.url != "", path, "give --file or --api")
	if err != nil {
		return err
	}
	res, err := verify.VerifyAnswer(*kind, *subject, bytes.TrimSpace(raw), v)
	if err != nil {
		return err
	}
	if err := witnessed(env.out(), "checkpoint", res.Checkpoint, v, pol); err != nil {
		return err
	}
	fmt.Fprintf(env.out(), "VERIFIED: %d actions, each in the log of %q at the checkpoint of size %d (root %x), matching its ledger entry\n",
		res.Actions, safe(res.Checkpoint.Origin), res.Checkpoint.Size, res.Checkpoint.Hash)
	return nil
}

// safe is lineage.Printable: everything printed that comes from a record, the API, a bundle or
// a file goes through it (as in cmd/lineagectl/safe.go).
func safe(s string) string { return lineage.Printable(s) }

// safeV shows any value as %v would, made printable.
func safeV(v any) string { return lineage.Printable(fmt.Sprint(v)) }
