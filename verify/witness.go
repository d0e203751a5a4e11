package verify

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lineage-audit/lineage/ledger"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// Witnessed checkpoints (C2SP tlog-witness, C2SP tlog-cosignature). The log's own signature
// proves only that the operator signed a tree head; a witness cosignature (a cosignature/v1
// line appended to the checkpoint note by each witness that checked the new tree extends the
// last one it saw) proves that independent parties saw the same tree, so the operator cannot
// show different logs to different auditors without being caught. A client that wants that
// assurance names the witnesses it trusts and how many of them must have cosigned in a
// witness policy, and refuses a checkpoint that lacks the quorum.
//
// The policy file is the Sigsum policy format as transparency-dev/formats/witness parses it
// (the same file ledger/witness uses on the log's side), with C2SP cosignature/v1 verifier keys:
//
//	witness NAME VKEY URL            a witness: its name in this file, its cosignature/v1 key, its URL
//	group NAME (N|any|all) MEMBER…   N of the members (witnesses or groups defined above)
//	quorum NAME                      the witness or group whose satisfaction a checkpoint needs
//	                                 ("quorum none": no cosignature needed)
//
// '#' starts a comment; "log" lines are accepted and ignored (the log's key is the verifier
// given separately). Cosignature lines from keys the policy does not name are ignored, as C2SP
// tlog-cosignature requires; a line from a key the policy names that does not verify is an
// error (the checkpoint was altered after that witness cosigned it, or the line was forged).

// MaxWitnessPolicySize bounds a witness policy file.
const MaxWitnessPolicySize = 64 << 10

// MaxCheckpointSize bounds a checkpoint note read from a file or checked against a policy (as
// it bounds a bundle's checkpoint member).
const MaxCheckpointSize = maxCheckpointSize

const maxCheckpointNote = maxCheckpointSize

// ErrWitnessQuorum is matched (errors.Is) by the error Check returns when a checkpoint carries
// valid cosignatures, but not from enough of the policy's witnesses.
var ErrWitnessQuorum = errors.New("verify: the checkpoint lacks the witness quorum")

// WitnessPolicy is a parsed witness policy (ParseWitnessPolicy, LoadWitnessPolicy).
type WitnessPolicy struct {
	group     witness.Group
	witnesses []policyWitness
	quorum    string
	// members describes each group (its threshold and members), for messages.
	members map[string]string
}

type policyWitness struct {
	name string
	v    note.Verifier
}

// Cosignature is one valid witness cosignature on a checkpoint.
type Cosignature struct {
	// Witness is the witness's name in the policy; Key the name of its cosignature key.
	Witness string `json:"witness"`
	Key     string `json:"key"`
	// Time is when the witness cosigned (the cosignature/v1 timestamp).
	Time time.Time `json:"time"`
}

// WitnessStatus is what a checkpoint's cosignatures say about a policy.
type WitnessStatus struct {
	// Quorum describes the policy's quorum ("group eu: 2 of w1 w2 w3").
	Quorum string `json:"quorum"`
	// Cosigned are the policy's witnesses whose cosignature verified, in policy order.
	Cosigned []Cosignature `json:"cosigned"`
	// Missing are the policy's witnesses that did not cosign, in policy order.
	Missing []string `json:"missing"`
	// Satisfied tells whether the quorum is met.
	Satisfied bool `json:"satisfied"`
}

// LoadWitnessPolicy reads and parses a witness policy file (at most MaxWitnessPolicySize bytes).
func LoadWitnessPolicy(path string) (*WitnessPolicy, error) {
	b, err := ledger.ReadFileLimit(path, MaxWitnessPolicySize)
	if err != nil {
		return nil, fmt.Errorf("verify: witness policy: %w", err)
	}
	p, err := ParseWitnessPolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return p, nil
}

// ParseWitnessPolicy parses a witness policy (see the format above).
func ParseWitnessPolicy(b []byte) (*WitnessPolicy, error) {
	if len(b) > MaxWitnessPolicySize {
		return nil, fmt.Errorf("verify: witness policy: more than %d bytes", MaxWitnessPolicySize)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("verify: witness policy: not UTF-8 text")
	}
	g, err := witness.ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("verify: witness policy: %w", err)
	}
	// witness.Group keeps the keys but not the names: read the names (and the groups, to
	// describe the quorum) from the text ParsePolicy has just accepted.
	p := &WitnessPolicy{group: g, members: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "witness":
			v, err := fnote.NewVerifierForCosignatureV1(f[2])
			if err != nil {
				return nil, fmt.Errorf("verify: witness policy: witness %s: %w", f[1], err)
			}
			p.witnesses = append(p.witnesses, policyWitness{name: f[1], v: v})
			p.members[f[1]] = "witness " + f[1]
		case "group":
			p.members[f[1]] = fmt.Sprintf("group %s: %s of %s", f[1], f[2], strings.Join(f[3:], " "))
		case "quorum":
			p.quorum = f[1]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("verify: witness policy: %w", err)
	}
	return p, nil
}

// Quorum describes the quorum the policy requires.
func (p *WitnessPolicy) Quorum() string {
	if d, ok := p.members[p.quorum]; ok {
		return d
	}
	return p.quorum // "none"
}

// Witnesses lists the names of the policy's witnesses, in file order.
func (p *WitnessPolicy) Witnesses() []string {
	out := make([]string, len(p.witnesses))
	for i, w := range p.witnesses {
		out[i] = w.name
	}
	return out
}

// Status reads the cosignatures of a checkpoint note (as published: the log's signature and
// the witnesses' cosignature lines) against the policy. It does not check the log's own
// signature: open the checkpoint with OpenCheckpoint first. It fails if the note is malformed
// or a cosignature from a key the policy names does not verify; a missing quorum is not an
// error here (see Satisfied, and Check).
func (p *WitnessPolicy) Status(checkpoint []byte) (*WitnessStatus, error) {
	if len(checkpoint) > maxCheckpointNote {
		return nil, fmt.Errorf("verify: checkpoint note: more than %d bytes", maxCheckpointNote)
	}
	st := &WitnessStatus{Quorum: p.Quorum(), Cosigned: []Cosignature{}, Missing: []string{}}
	for _, w := range p.witnesses {
		n, err := note.Open(checkpoint, note.VerifierList(w.v))
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case err == nil:
			ts, err := fnote.CoSigV1Timestamp(n.Sigs[0])
			if err != nil {
				return nil, fmt.Errorf("verify: witness %s: cosignature timestamp: %w", w.name, err)
			}
			st.Cosigned = append(st.Cosigned, Cosignature{Witness: w.name, Key: w.v.Name(), Time: ts.UTC()})
		case errors.As(err, &unverified):
			st.Missing = append(st.Missing, w.name)
		case errors.As(err, &invalid):
			return nil, fmt.Errorf("verify: witness %s: the cosignature line of its key %s does not verify over this checkpoint: the checkpoint was altered after it was cosigned, or the line is forged", w.name, invalid.Name)
		default:
			return nil, fmt.Errorf("verify: checkpoint note: %w", err)
		}
	}
	st.Satisfied = p.group.Satisfied(checkpoint)
	return st, nil
}

// Check fails unless the checkpoint note carries valid cosignatures from the policy's quorum.
// The error names the witnesses that cosigned and those missing; it matches ErrWitnessQuorum
// when the cosignatures present are valid but too few.
func (p *WitnessPolicy) Check(checkpoint []byte) error {
	st, err := p.Status(checkpoint)
	if err != nil {
		return err
	}
	if !st.Satisfied {
		return fmt.Errorf("%w (%s): %s", ErrWitnessQuorum, st.Quorum, st.Summary())
	}
	return nil
}

// Summary says in one line who cosigned (with the cosignature times) and who is missing.
func (st *WitnessStatus) Summary() string {
	var b strings.Builder
	b.WriteString("cosigned by ")
	if len(st.Cosigned) == 0 {
		b.WriteString("none of the policy's witnesses")
	}
	for i, c := range st.Cosigned {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", c.Witness, c.Time.Format(time.RFC3339))
	}
	if len(st.Missing) > 0 {
		fmt.Fprintf(&b, "; missing %s", strings.Join(st.Missing, ", "))
	}
	return b.String()
}

// OtherSignatures lists the signatures on a checkpoint note by keys not named like the log's
// key v (the log's keys, current and rotated, all carry the log's origin as their name): the
// witness cosignatures, unchecked. It is what a client without a witness policy can report;
// open the checkpoint with OpenCheckpoint first, which checks the log's signature.
func OtherSignatures(checkpoint []byte, v note.Verifier) ([]note.Signature, error) {
	if len(checkpoint) > maxCheckpointNote {
		return nil, fmt.Errorf("verify: checkpoint note: more than %d bytes", maxCheckpointNote)
	}
	// With no known key, note.Open lists every signature as unverified.
	_, err := note.Open(checkpoint, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		return nil, fmt.Errorf("verify: checkpoint note: %w", err)
	}
	var out []note.Signature
	for _, s := range unverified.Note.UnverifiedSigs {
		if s.Name != v.Name() {
			out = append(out, s)
		}
	}
	return out, nil
}
