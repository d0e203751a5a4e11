package witness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/lineage-audit/lineage/ledger"
	fnote "github.com/transparency-dev/formats/note"
	fwitness "github.com/transparency-dev/formats/witness"
	"golang.org/x/mod/sumdb/note"
)

// MaxPolicySize bounds a policy file: a policy names a handful of witnesses, a few hundred
// bytes each.
const MaxPolicySize = 64 << 10

// MaxWitnesses bounds the witnesses a quorum involves: a note carries at most 100 signatures
// (golang.org/x/mod/sumdb/note), the log's own included.
const MaxWitnesses = 64

// Witness is one witness of a policy: its name in the policy file, its C2SP cosignature/v1
// verifier key and the URL its add-checkpoint requests go to.
type Witness struct {
	// Name is the witness's name in the policy file (the metrics' "witness" label).
	Name string
	// VKey is the witness's cosignature/v1 verifier key as written in the policy.
	VKey string
	// Verifier checks the witness's cosignatures; its Name() is the witness's key name, the
	// name on its cosignature lines.
	Verifier note.Verifier
	// URL is the witness's add-checkpoint endpoint: the policy URL joined with
	// "/add-checkpoint" (C2SP tlog-witness).
	URL string
}

// Policy is a parsed witness policy: the quorum the served checkpoints must meet and the
// witnesses the quorum names (the ones lineaged sends checkpoints to).
type Policy struct {
	// Quorum is evaluated on a cosigned note with Satisfied.
	Quorum fwitness.Group
	// Witnesses are the witnesses the quorum involves, sorted by name.
	Witnesses []Witness
}

// LoadPolicy reads and parses the policy file at path (at most MaxPolicySize bytes).
func LoadPolicy(path string) (*Policy, error) {
	b, err := ledger.ReadFileLimit(path, MaxPolicySize)
	if err != nil {
		return nil, fmt.Errorf("witness: policy: %w", err)
	}
	p, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return p, nil
}

// ParsePolicy parses a witness policy: the Sigsum policy format with C2SP cosignature/v1
// verifier keys, as formats/witness.ParsePolicy reads it:
//
//	witness NAME VKEY URL        # one line per witness; URL is the witness's base URL
//	group NAME k|any|all MEMBER...
//	quorum NAME                  # a group or a single witness
//
// "log" lines are ignored (they are for clients checking the log). Lineage also requires what
// formats/witness.ParsePolicy leaves open: every witness has an http or https URL, no two
// witnesses share a URL or a key, and the quorum is not "none" (a policy that needs no
// cosignature would serve unwitnessed checkpoints as witnessed ones).
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, fmt.Errorf("witness: policy larger than %d bytes", MaxPolicySize)
	}
	if !isText(b) {
		return nil, errors.New("witness: policy is not UTF-8 text")
	}
	group, err := fwitness.ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("witness: policy: %w", err)
	}
	if group.N <= 0 {
		return nil, errors.New("witness: policy: the quorum needs no cosignature (quorum none or a threshold of 0); remove the witness policy instead")
	}
	// formats/witness keeps the component names to itself: read the witness lines again for
	// the names, the URLs and the keys, then keep the witnesses the quorum reaches.
	byURL := map[string]Witness{}
	keys := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) != 4 || f[0] != "witness" {
			continue // fwitness.ParsePolicy checked every other line
		}
		name, vkey, raw := f[1], f[2], f[3]
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("witness: policy: witness %s: URL %q is not an http(s) URL without credentials, query or fragment", name, raw)
		}
		v, err := fnote.NewVerifierForCosignatureV1(vkey)
		if err != nil {
			return nil, fmt.Errorf("witness: policy: witness %s: key: %w", name, err)
		}
		w := Witness{Name: name, VKey: vkey, Verifier: v, URL: u.JoinPath("/add-checkpoint").String()}
		if o, dup := byURL[w.URL]; dup {
			return nil, fmt.Errorf("witness: policy: witnesses %s and %s have the same URL %s", o.Name, name, raw)
		}
		kid := fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())
		if o, dup := keys[kid]; dup {
			return nil, fmt.Errorf("witness: policy: witnesses %s and %s have the same key", o, name)
		}
		byURL[w.URL], keys[kid] = w, name
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("witness: policy: %w", err)
	}
	p := &Policy{Quorum: group}
	for u := range group.Endpoints() {
		w, ok := byURL[u]
		if !ok {
			return nil, fmt.Errorf("witness: policy: the quorum names the endpoint %s, which no witness line declares", u)
		}
		p.Witnesses = append(p.Witnesses, w)
	}
	if len(p.Witnesses) > MaxWitnesses {
		return nil, fmt.Errorf("witness: policy: the quorum involves %d witnesses, more than %d", len(p.Witnesses), MaxWitnesses)
	}
	sort.Slice(p.Witnesses, func(i, j int) bool { return p.Witnesses[i].Name < p.Witnesses[j].Name })
	return p, nil
}

// Satisfied reports whether the cosignatures on the signed note n meet the quorum.
func (p *Policy) Satisfied(n []byte) bool { return p.Quorum.Satisfied(n) }

// isText reports whether b is UTF-8 without control characters other than tab, CR and LF.
func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f {
			return false
		}
	}
	return true
}
