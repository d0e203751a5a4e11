package verify

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/lineage-audit/lineage/verify/witnesstest"
	"github.com/transparency-dev/formats/proof"
)

func TestTLogProofRoundTrip(t *testing.T) {
	l := newTestLog(t, 9)
	w := witnesstest.New(t, "w.example")
	cp := witnesstest.Cosign(t, l.checkpoint(t), l.v, w)
	pol, err := ParseWitnessPolicy(witnesstest.Policy("any", w))
	if err != nil {
		t.Fatal(err)
	}
	for i := range uint64(9) {
		rp := l.recordProof(t, i, cp)
		b, err := RecordTLogProof(rp)
		if err != nil {
			t.Fatal(err)
		}
		if !IsTLogProof(b) {
			t.Fatalf("no header: %q", b)
		}
		p, err := DecodeTLogProof(b)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		// transparency-dev/formats reads it the same way.
		var fp proof.TLogProof
		if err := fp.Unmarshal(b); err != nil || fp.Index != p.Index || !bytes.Equal(fp.ExtraData, p.ExtraData) || !bytes.Equal(fp.Checkpoint, p.Checkpoint) || len(fp.Hashes) != len(p.Hashes) {
			t.Fatalf("formats reads %+v, %v", fp, err)
		}
		got, err := VerifyTLogProof(p, nil, l.v)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if got.Index != i || got.Envelope.Record.ID != rp.Record.ID || got.Checkpoint.Size != 9 {
			t.Fatalf("entry %d: verified %+v", i, got)
		}
		if err := pol.Check(got.Checkpoint.Note); err != nil {
			t.Fatalf("the cosignature did not survive: %v", err)
		}
		// The entry may also come separately; it must then be the one in the extra line.
		if _, err := VerifyTLogProof(p, l.entries[i], l.v); err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyTLogProof(p, l.entries[(i+1)%9], l.v); err == nil || !strings.Contains(err.Error(), "differs") {
			t.Fatalf("another entry given: %v", err)
		}
		noExtra := *p
		noExtra.ExtraData = nil
		if _, err := VerifyTLogProof(&noExtra, nil, l.v); err == nil || !strings.Contains(err.Error(), "no entry") {
			t.Fatalf("no entry at all: %v", err)
		}
		if _, err := VerifyTLogProof(&noExtra, l.entries[i], l.v); err != nil {
			t.Fatalf("entry given separately: %v", err)
		}
		if _, err := VerifyTLogProof(&noExtra, l.entries[(i+1)%9], l.v); err == nil || !strings.Contains(err.Error(), "inclusion") {
			t.Fatalf("the wrong entry given separately: %v", err)
		}
	}
	// Tampering: another index, another hash, another checkpoint key.
	p, _ := DecodeTLogProof(mustTLogProof(t, l.recordProof(t, 3, cp)))
	moved := *p
	moved.Index = 4
	if _, err := VerifyTLogProof(&moved, nil, l.v); err == nil || !strings.Contains(err.Error(), "inclusion") {
		t.Fatalf("moved index: %v", err)
	}
	flipped := *p
	flipped.Hashes = append([][32]byte(nil), p.Hashes...)
	flipped.Hashes[0][0] ^= 1
	if _, err := VerifyTLogProof(&flipped, nil, l.v); err == nil {
		t.Fatal("a flipped proof hash verified")
	}
	other := newTestLog(t, 1)
	if _, err := VerifyTLogProof(p, nil, other.v); err == nil || !strings.Contains(err.Error(), "checkpoint signature") {
		t.Fatalf("another log's key: %v", err)
	}
}

func mustTLogProof(t *testing.T, rp *RecordProof) []byte {
	t.Helper()
	b, err := RecordTLogProof(rp)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeTLogProofStrict(t *testing.T) {
	l := newTestLog(t, 3)
	good := mustTLogProof(t, l.recordProof(t, 1, l.checkpoint(t)))
	h := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct{ name, in, err string }{
		{"empty", "", "first line"},
		{"other header", strings.Replace(string(good), "@v1", "@v2", 1), "first line"},
		{"CRLF", strings.ReplaceAll(string(good), "\n", "\r\n"), "first line"},
		{"no index", TLogProofHeader + "\n\n" + "x\n", "index"},
		{"leading zero", TLogProofHeader + "\nindex 01\n\nx\n", "decimal"},
		{"plus sign", TLogProofHeader + "\nindex +1\n\nx\n", "decimal"},
		{"empty extra", TLogProofHeader + "\nextra \nindex 1\n\nx\n", "base64"},
		{"unpadded extra", TLogProofHeader + "\nextra YQ\nindex 1\n\nx\n", "base64"},
		{"non-canonical extra", TLogProofHeader + "\nextra YR==\nindex 1\n\nx\n", "base64"},
		{"short hash", TLogProofHeader + "\nindex 1\nAAAA\n\nx\n", "32 bytes"},
		{"hash with CR", TLogProofHeader + "\nindex 1\n" + h + "\r\n\nx\n", "32 bytes"},
		{"too many hashes", TLogProofHeader + "\nindex 1\n" + strings.Repeat(h+"\n", 65) + "\nx\n", "more than 64"},
		{"no blank line", TLogProofHeader + "\nindex 1\n" + h + "\n", "no empty line"},
		{"no checkpoint", TLogProofHeader + "\nindex 1\n\n", "checkpoint is empty"},
		{"no final newline", strings.TrimSuffix(string(good), "\n"), "newline"},
		{"CR in checkpoint", TLogProofHeader + "\nindex 1\n\nx\r\n", "control"},
		{"too large", TLogProofHeader + "\nindex 1\n\n" + strings.Repeat("x", MaxTLogProofSize), "more than"},
	} {
		if _, err := DecodeTLogProof([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.err)
		}
	}
	// A large entry (a record near lineage.MaxRecordSize) makes an extra line longer than
	// 64 KiB, which DecodeTLogProof reads back.
	big := TLogProof{Index: 0, Checkpoint: []byte("x\n"), ExtraData: bytes.Repeat([]byte("e"), 70<<10)}
	if p, err := DecodeTLogProof(big.Marshal()); err != nil || !bytes.Equal(p.ExtraData, big.ExtraData) {
		t.Fatalf("large extra: %v", err)
	}
}

// FuzzTLogProof: DecodeTLogProof never panics, bounds its input, and what it accepts
// re-encodes to exactly its input and reads the same with transparency-dev/formats (when its
// lines fit that reader's 64 KiB); verifying what it accepts never panics.
func FuzzTLogProof(f *testing.F) {
	l := newTestLog(f, 5)
	w := witnesstest.New(f, "w.example")
	cp := witnesstest.Cosign(f, l.checkpoint(f), l.v, w)
	for i := range uint64(5) {
		rp := l.recordProof(f, i, cp)
		b, err := RecordTLogProof(rp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(TLogProofHeader + "\nindex 0\n\nx\n"))
	f.Add([]byte(TLogProofHeader + "\nextra YQ==\nindex 18446744073709551615\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeTLogProof(b)
		if err != nil {
			return
		}
		if len(b) > MaxTLogProofSize {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("re-encodes differently:\n%q\n%q", p.Marshal(), b)
		}
		if !IsTLogProof(b) {
			t.Fatal("accepted without the header")
		}
		longest := 0
		for _, line := range bytes.Split(b, []byte("\n")) {
			longest = max(longest, len(line))
		}
		if longest < 60<<10 {
			var fp proof.TLogProof
			if err := fp.Unmarshal(b); err != nil {
				t.Fatalf("transparency-dev/formats refuses what we accept: %v", err)
			}
			if fp.Index != p.Index || !bytes.Equal(fp.ExtraData, p.ExtraData) || !bytes.Equal(fp.Checkpoint, p.Checkpoint) || len(fp.Hashes) != len(p.Hashes) {
				t.Fatalf("transparency-dev/formats reads %+v; we read %+v", fp, p)
			}
		}
		_, _ = VerifyTLogProof(p, nil, l.v)
	})
}
