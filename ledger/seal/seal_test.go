package seal

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func mustPaths(t testing.TB, extra ...Path) *Paths {
	t.Helper()
	p, err := NewPaths(extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sealEntry seals canonical and returns the v2 entry.
func sealEntry(t testing.TB, s KeyStore, canonical []byte, paths *Paths) ([]byte, *Envelope) {
	t.Helper()
	r := decodeRec(t, canonical)
	red, fields, err := Seal(context.Background(), s, r.Tenant, r.ID, canonical, paths)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := NewEnvelopeV2(red, fields, testTime, true)
	if err != nil {
		t.Fatal(err)
	}
	env, err := DecodeEnvelopeV2(entry)
	if err != nil {
		t.Fatalf("DecodeEnvelopeV2(NewEnvelopeV2(...)): %v\n%s", err, entry)
	}
	return entry, env
}

func TestRoundTripByteIdentical(t *testing.T) {
	ctx := context.Background()
	s, _, _ := testStore(t)
	plain, reviewed := demoRecords(t)
	paths := mustPaths(t, Path{Pointer: "/action/target", Subject: "/user/id"})
	for _, canonical := range [][]byte{plain, reviewed} {
		r := decodeRec(t, canonical)
		entry, env := sealEntry(t, s, canonical, paths)
		want := 2
		if r.HumanOversight != nil {
			want = 3
		}
		if len(env.Sealed) != want {
			t.Fatalf("%s: %d sealed fields, want %d", r.ID, len(env.Sealed), want)
		}
		for _, v := range []string{r.User.ID, r.Action.Target} {
			if bytes.Contains(entry, []byte(v)) {
				t.Errorf("%s: entry contains the clear value %q", r.ID, v)
			}
		}
		if env.Record.User.ID != env.Sealed[len(env.Sealed)-1].Commitment.Token() || !IsSealedToken(env.Record.User.ID) {
			t.Errorf("redacted user.id = %q", env.Record.User.ID)
		}
		// Everything else is unchanged.
		if env.Record.ID != r.ID || env.Record.Tenant != r.Tenant || env.Record.Decision != r.Decision || env.Record.User.Issuer != r.User.Issuer {
			t.Errorf("non-personal members changed")
		}
		clearRec, openings, status, err := Open(ctx, s, r.Tenant, r.ID, env.Canonical, env.Sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(clearRec, canonical) {
			t.Fatalf("opened record differs from the original\n got %s\nwant %s", clearRec, canonical)
		}
		if len(openings) != want || len(status) != want {
			t.Fatalf("%d openings, %d statuses", len(openings), len(status))
		}
		for i, st := range status {
			if st.State != Clear {
				t.Errorf("%s: state %v", st.Path, st.State)
			}
			if err := VerifyOpening(r.Tenant, env.Sealed[i].Commitment, openings[i]); err != nil {
				t.Error(err)
			}
		}
		if r.HumanOversight != nil {
			// the reviewer's field is under the reviewer's key, not the user's
			if env.Sealed[0].Path != "/action/target" || env.Sealed[1].Path != "/human_oversight/reviewer/id" {
				t.Fatalf("paths %v", env.Sealed)
			}
			if env.Sealed[1].KeyID == env.Sealed[2].KeyID {
				t.Error("reviewer and user share a key")
			}
			if env.Sealed[0].KeyID != env.Sealed[2].KeyID {
				t.Error("/action/target (subject /user/id) is not under the user's key")
			}
		}
	}
}

func TestSealedValueEscapes(t *testing.T) {
	// A value with characters canonical JSON escapes comes back byte-identical.
	ctx := context.Background()
	s, _, _ := testStore(t)
	plain, _ := demoRecords(t)
	r := decodeRec(t, plain)
	r.Action.Target = "a \"quoted\" target \\ with é and 😀"
	canonical, err := r.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	_, env := sealEntry(t, s, canonical, mustPaths(t, Path{Pointer: "/action/target"}))
	got, openings, _, err := Open(ctx, s, r.Tenant, r.ID, env.Canonical, env.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, canonical) {
		t.Fatalf("got %s\nwant %s", got, canonical)
	}
	if openings[0].Value != r.Action.Target {
		t.Fatalf("opening value %q", openings[0].Value)
	}
}

func TestSealRefusals(t *testing.T) {
	ctx := context.Background()
	s, _, _ := testStore(t)
	plain, _ := demoRecords(t)
	r := decodeRec(t, plain)
	for _, tc := range []struct {
		path Path
		want string
	}{
		{Path{Pointer: "/policy_context/risk_score"}, "not a string"},
		{Path{Pointer: "/decision/policy"}, "not a string"},
		{Path{Pointer: "/decision/effect"}, "not a valid record"},
		{Path{Pointer: "/action/target", Subject: "/nope"}, "subject /nope is absent"},
	} {
		_, _, err := Seal(ctx, s, r.Tenant, r.ID, plain, mustPaths(t, tc.path))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.path, err, tc.want)
		}
	}
	for _, p := range []Path{{Pointer: "/id"}, {Pointer: "/tenant"}, {Pointer: "/user/id"}, {Pointer: "user"},
		{Pointer: "/a~2"}, {Pointer: "/x", Subject: "y"}, {Pointer: "/parent_id"}} {
		if _, err := NewPaths(p); err == nil {
			t.Errorf("NewPaths(%v) accepted", p)
		}
	}
	// An absent optional field is simply not sealed.
	_, fields, err := Seal(ctx, s, r.Tenant, r.ID, plain, mustPaths(t, Path{Pointer: "/policy_context/absent"}))
	if err != nil || len(fields) != 1 {
		t.Fatalf("fields %v, err %v", fields, err)
	}
}

func TestTamperingRejected(t *testing.T) {
	ctx := context.Background()
	s, _, _ := testStore(t)
	plain, _ := demoRecords(t)
	r := decodeRec(t, plain)
	paths := mustPaths(t, Path{Pointer: "/action/target", Subject: "/user/id"})
	_, env := sealEntry(t, s, plain, paths)
	user := 1 // /user/id sorts after /action/target
	mutate := func(f func(fs []Field) []Field) []Field {
		fs := make([]Field, len(env.Sealed))
		for i, x := range env.Sealed {
			x.Ciphertext = bytes.Clone(x.Ciphertext)
			fs[i] = x
		}
		return f(fs)
	}
	cases := map[string]struct {
		fields   []Field
		redacted []byte
		recordID string
	}{
		"ciphertext bit": {fields: mutate(func(fs []Field) []Field { fs[user].Ciphertext[len(fs[user].Ciphertext)-20] ^= 1; return fs })},
		"key-commit tag": {fields: mutate(func(fs []Field) []Field { fs[user].Ciphertext[aeadNonceSize+3] ^= 1; return fs })},
		"aead nonce":     {fields: mutate(func(fs []Field) []Field { fs[user].Ciphertext[0] ^= 1; return fs })},
		"truncated":      {fields: mutate(func(fs []Field) []Field { fs[user].Ciphertext = fs[user].Ciphertext[:40]; return fs })},
		"swapped ciphertexts": {fields: mutate(func(fs []Field) []Field {
			fs[0].Ciphertext, fs[1].Ciphertext = fs[1].Ciphertext, fs[0].Ciphertext
			return fs
		})},
		"other record id": {recordID: r.ID + "-x"},
		"commitment (token kept in sync)": {
			fields: mutate(func(fs []Field) []Field { fs[user].Commitment[0] ^= 1; return fs }),
			redacted: bytes.Replace(env.Canonical, []byte(env.Sealed[user].Commitment.Token()),
				[]byte(func() Commitment { m := env.Sealed[user].Commitment; m[0] ^= 1; return m }().Token()), 1),
		},
		"commitment only": {fields: mutate(func(fs []Field) []Field { fs[user].Commitment[5] ^= 1; return fs })},
		"token only": {redacted: bytes.Replace(env.Canonical, []byte(env.Sealed[user].Commitment.Token()),
			[]byte(env.Sealed[0].Commitment.Token()), 1)},
	}
	for name, tc := range cases {
		fields, red, id := env.Sealed, env.Canonical, r.ID
		if tc.fields != nil {
			fields = tc.fields
		}
		if tc.redacted != nil {
			red = tc.redacted
		}
		if tc.recordID != "" {
			id = tc.recordID
		}
		_, _, _, err := Open(ctx, s, r.Tenant, id, red, fields)
		if !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: err = %v, want ErrIntegrity", name, err)
		}
	}
	// A ciphertext under the right key id but another key (a key-store row replaced) fails the
	// key commitment before any decryption.
	var other Key
	other[0] = 1
	f := env.Sealed[user]
	if _, _, err := decryptField(&other, fieldAD(r.Tenant, r.ID, f.Path, f.KeyID, f.Commitment), f.Ciphertext); !errors.Is(err, ErrIntegrity) ||
		!strings.Contains(err.Error(), "key commitment") {
		t.Errorf("wrong key: %v", err)
	}
}

func TestVerifyOpening(t *testing.T) {
	var nonce [OpeningNonceSize]byte
	nonce[3] = 7
	m := commit("acme", "/user/id", &nonce, "alice")
	good := Opening{Path: "/user/id", Value: "alice", Nonce: nonce}
	if err := VerifyOpening("acme", m, good); err != nil {
		t.Fatal(err)
	}
	bad := []Opening{
		{Path: "/user/id", Value: "alicf", Nonce: nonce},
		{Path: "/user/id", Value: "alice", Nonce: [OpeningNonceSize]byte{}},
		{Path: "/user/idx", Value: "alice", Nonce: nonce},
		{Path: "/user/id", Value: "", Nonce: nonce},
	}
	for _, o := range bad {
		if err := VerifyOpening("acme", m, o); !errors.Is(err, ErrOpening) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	if err := VerifyOpening("acmf", m, good); !errors.Is(err, ErrOpening) {
		t.Error("other tenant accepted")
	}
	// Length prefixes: moving bytes between tenant and path changes the commitment.
	if commit("ab", "/c", &nonce, "v") == commit("a", "b/c", &nonce, "v") {
		t.Error("tenant/path boundary is ambiguous")
	}
}

func TestCiphertextHidesLength(t *testing.T) {
	var key Key
	key[0] = 1
	var nonce [OpeningNonceSize]byte
	sizes := map[int]bool{}
	for _, v := range []string{"", "a", "bob@example.com", strings.Repeat("x", 30)} {
		c, err := encryptField(&key, nil, &nonce, v)
		if err != nil {
			t.Fatal(err)
		}
		sizes[len(c)] = true
		_, got, err := decryptField(&key, nil, c)
		if err != nil || got != v {
			t.Fatalf("%q: got %q, %v", v, got, err)
		}
	}
	if len(sizes) != 1 {
		t.Fatalf("values of 0 to 30 bytes give ciphertexts of sizes %v, want one size", sizes)
	}
	c, err := encryptField(&key, nil, &nonce, strings.Repeat("x", 31))
	if err != nil || sizes[len(c)] {
		t.Fatalf("a 31-byte value fits the first block: %d, %v", len(c), err)
	}
	if _, err := encryptField(&key, nil, &nonce, strings.Repeat("x", MaxValueSize+1)); err == nil {
		t.Fatal("oversized value sealed")
	}
	c, err = encryptField(&key, nil, &nonce, strings.Repeat("x", MaxValueSize))
	if err != nil || len(c) != maxCiphertextSize {
		t.Fatalf("largest value: %d bytes, want %d (%v)", len(c), maxCiphertextSize, err)
	}
}
