package verify

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/transparency-dev/formats/proof"
	"golang.org/x/mod/sumdb/note"
)

// Portable proofs (C2SP tlog-proof). GET /v1/records/{id}?format=tlog-proof answers a record's
// proof in the C2SP text format any tlog tool reads:
//
//	c2sp.org/tlog-proof@v1
//	extra <base64 of the exact ledger entry>
//	index <log index>
//	<base64 inclusion proof hash>…
//	<empty line>
//	<the checkpoint note, with the witnesses' cosignatures>
//
// The spec leaves "extra" to the application. Lineage puts the exact ledger entry there (the
// canonical envelope, the bytes the leaf hash covers), so one file proves what was logged and
// not only that something was: a verifier recomputes the leaf hash from it, and reads the
// record out of it. docs/PROOFS.md explains the choice.

// TLogProofHeader is the first line of a C2SP tlog-proof.
const TLogProofHeader = "c2sp.org/tlog-proof@v1"

// MaxTLogProofSize bounds a tlog-proof DecodeTLogProof reads.
const MaxTLogProofSize = 1 << 20

// maxProofHashes bounds an inclusion proof: a tree of at most 2^64 leaves has at most 64 levels.
const maxProofHashes = 64

// TLogProof is a decoded C2SP tlog-proof (the type of transparency-dev/formats/proof).
type TLogProof = proof.TLogProof

// IsTLogProof tells whether b starts with the tlog-proof header line (and so is not a JSON
// answer).
func IsTLogProof(b []byte) bool {
	return bytes.HasPrefix(b, []byte(TLogProofHeader+"\n"))
}

// DecodeTLogProof parses a C2SP tlog-proof strictly: at most MaxTLogProofSize bytes, every line
// in its canonical form (standard padded base64, decimal index without leading zeroes, "\n"
// line ends), at most 64 proof hashes of 32 bytes, and a non-empty checkpoint note ending in a
// newline. What it accepts re-encodes (Marshal) to exactly the input. Unlike the reader of
// transparency-dev/formats, it has no 64 KiB line limit, so an extra line holding a large
// ledger entry reads back.
func DecodeTLogProof(b []byte) (*TLogProof, error) {
	if len(b) > MaxTLogProofSize {
		return nil, fmt.Errorf("verify: tlog-proof: more than %d bytes", MaxTLogProofSize)
	}
	rest := b
	line := func() ([]byte, bool) {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil, false
		}
		l := rest[:i]
		rest = rest[i+1:]
		return l, true
	}
	bad := func(format string, args ...any) (*TLogProof, error) {
		return nil, fmt.Errorf("verify: tlog-proof: "+format, args...)
	}
	l, ok := line()
	if !ok || string(l) != TLogProofHeader {
		return bad("the first line is not %q", TLogProofHeader)
	}
	p := &TLogProof{}
	l, ok = line()
	if !ok {
		return bad("missing index line")
	}
	if e, isExtra := bytes.CutPrefix(l, []byte("extra ")); isExtra {
		x, err := base64.StdEncoding.Strict().DecodeString(string(e))
		if err != nil || len(e) == 0 || base64.StdEncoding.EncodeToString(x) != string(e) {
			return bad("extra line is not canonical base64")
		}
		p.ExtraData = x
		if l, ok = line(); !ok {
			return bad("missing index line")
		}
	}
	idx, isIndex := bytes.CutPrefix(l, []byte("index "))
	if !isIndex {
		return bad("want an \"index N\" line, got %q", clip(string(l)))
	}
	n, err := strconv.ParseUint(string(idx), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(idx) {
		return bad("index %q is not a decimal number", clip(string(idx)))
	}
	p.Index = n
	for {
		l, ok = line()
		if !ok {
			return bad("no empty line before the checkpoint")
		}
		if len(l) == 0 {
			break
		}
		if len(p.Hashes) == maxProofHashes {
			return bad("more than %d proof hashes", maxProofHashes)
		}
		h, err := base64.StdEncoding.Strict().DecodeString(string(l))
		if err != nil || len(h) != sha256.Size || base64.StdEncoding.EncodeToString(h) != string(l) {
			return bad("proof hash %d is not the canonical base64 of 32 bytes", len(p.Hashes)+1)
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	if len(rest) == 0 || rest[len(rest)-1] != '\n' {
		return bad("the checkpoint is empty or does not end with a newline")
	}
	if len(rest) > maxCheckpointNote {
		return bad("the checkpoint is more than %d bytes", maxCheckpointNote)
	}
	// A signed note is UTF-8 without control characters other than newline.
	if !utf8.Valid(rest) || bytes.ContainsFunc(rest, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
		return bad("the checkpoint holds control characters or is not UTF-8")
	}
	p.Checkpoint = bytes.Clone(rest)
	if !bytes.Equal(p.Marshal(), b) {
		// Defence in depth: every branch above accepts only canonical text.
		return bad("not in canonical form")
	}
	return p, nil
}

// RecordTLogProof renders a record proof (the JSON answer of GET /v1/records/{id}) as a C2SP
// tlog-proof, with the ledger entry in the extra line.
func RecordTLogProof(rp *RecordProof) ([]byte, error) {
	p := TLogProof{Index: rp.Index, Checkpoint: []byte(rp.Checkpoint), ExtraData: rp.Leaf}
	if len(rp.Leaf) == 0 {
		return nil, errors.New("verify: tlog-proof: the record proof has no leaf")
	}
	if len(p.Checkpoint) == 0 || p.Checkpoint[len(p.Checkpoint)-1] != '\n' {
		return nil, errors.New("verify: tlog-proof: the checkpoint is not a note")
	}
	if len(rp.InclusionProof) > maxProofHashes {
		return nil, fmt.Errorf("verify: tlog-proof: %d proof hashes", len(rp.InclusionProof))
	}
	for i, h := range rp.InclusionProof {
		if len(h) != sha256.Size {
			return nil, fmt.Errorf("verify: tlog-proof: proof hash %d is %d bytes", i+1, len(h))
		}
		p.Hashes = append(p.Hashes, [sha256.Size]byte(h))
	}
	b := p.Marshal()
	if len(b) > MaxTLogProofSize {
		return nil, fmt.Errorf("verify: tlog-proof: %d bytes; the limit is %d", len(b), MaxTLogProofSize)
	}
	return b, nil
}

// VerifiedTLogProof is what VerifyTLogProof proved.
type VerifiedTLogProof struct {
	Checkpoint ledger.Checkpoint
	Index      uint64
	// Entry is the ledger entry proven, and Envelope its decoding (the record in it).
	Entry    []byte
	Envelope *lineage.Envelope
}

// VerifyTLogProof checks a C2SP tlog-proof offline with the log's public key v:
//  1. the checkpoint is a note signed by v, for v's log origin;
//  2. the entry is a canonical Lineage ledger entry: the proof's extra data, or entry when
//     given (both given: they must be equal);
//  3. the inclusion proof places the entry's leaf hash at the index in the checkpoint's tree.
//
// Witness cosignatures are checked separately (WitnessPolicy.Check on Checkpoint.Note).
func VerifyTLogProof(p *TLogProof, entry []byte, v note.Verifier) (*VerifiedTLogProof, error) {
	switch {
	case entry == nil && len(p.ExtraData) == 0:
		return nil, errors.New("verify: tlog-proof: the proof carries no entry (no extra line); give the entry separately")
	case entry == nil:
		entry = p.ExtraData
	case len(p.ExtraData) > 0 && !bytes.Equal(entry, p.ExtraData):
		return nil, errors.New("verify: tlog-proof: the entry given differs from the one in the proof's extra line")
	}
	cp, err := ledger.OpenCheckpoint(p.Checkpoint, v)
	if err != nil {
		return nil, fmt.Errorf("verify: checkpoint signature: %w", err)
	}
	env, err := DecodeEntry(entry)
	if err != nil {
		return nil, fmt.Errorf("verify: the entry at index %d is not a valid ledger entry: %w", p.Index, err)
	}
	hashes := make([][]byte, len(p.Hashes))
	for i := range p.Hashes {
		hashes[i] = p.Hashes[i][:]
	}
	if err := ledger.VerifyInclusion(entry, p.Index, hashes, cp); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return &VerifiedTLogProof{Checkpoint: cp, Index: p.Index, Entry: entry, Envelope: env}, nil
}
