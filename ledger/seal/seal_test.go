package seal

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
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

func TestTwoTenantsSameUserDifferentKeys(t *testing.T) {
	ctx := context.Background()
	s, _, _ := testStore(t)
	k1, key1, err := s.KeyFor(ctx, "tenant-a", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	k2, key2, err := s.KeyFor(ctx, "tenant-b", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if k1 == k2 || *key1 == *key2 {
		t.Fatal("two tenants share a subject key")
	}
	k1b, key1b, err := s.KeyFor(ctx, "tenant-a", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if k1b != k1 || *key1b != *key1 {
		t.Fatal("KeyFor is not stable")
	}
	// A key id of tenant B is not a key of tenant A.
	if _, err := s.Open(ctx, "tenant-a", k2); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("cross-tenant Open: %v", err)
	}
	// Same value, same path, two tenants: different commitments, ciphertexts.
	plain, _ := demoRecords(t)
	r := decodeRec(t, plain)
	_, fa, err := Seal(ctx, s, "tenant-a", r.ID, plain, mustPaths(t))
	if err != nil {
		t.Fatal(err)
	}
	_, fb, err := Seal(ctx, s, "tenant-b", r.ID, plain, mustPaths(t))
	if err != nil {
		t.Fatal(err)
	}
	if fa[0].Commitment == fb[0].Commitment || fa[0].KeyID == fb[0].KeyID {
		t.Fatal("tenants' sealed fields are linkable")
	}
	// Sealing the same record twice gives fresh commitments (hiding) under the same key id.
	_, fa2, err := Seal(ctx, s, "tenant-a", r.ID, plain, mustPaths(t))
	if err != nil {
		t.Fatal(err)
	}
	if fa2[0].Commitment == fa[0].Commitment || fa2[0].KeyID != fa[0].KeyID {
		t.Fatal("commitment not randomized or key id not stable")
	}
}

func TestEraseLeavesNoClearValue(t *testing.T) {
	ctx := context.Background()
	s, path, _ := testStore(t)
	_, reviewed := demoRecords(t)
	r := decodeRec(t, reviewed)
	user, reviewer := r.User.ID, r.HumanOversight.Reviewer.ID
	paths := mustPaths(t, Path{Pointer: "/action/target", Subject: "/user/id"})
	entry, env := sealEntry(t, s, reviewed, paths)

	// The lookup handle of the user, to look for it in the file afterwards.
	pep, err := s.pepper(ctx, r.Tenant, false)
	if err != nil {
		t.Fatal(err)
	}
	mac := subjectMAC(pep, user)
	var userKid KeyID
	for _, f := range env.Sealed {
		if f.Path == "/user/id" {
			userKid = f.KeyID
		}
	}
	var wrapped []byte
	if err := s.db.QueryRowContext(ctx, "SELECT wrapped FROM subject_keys WHERE key_id = ?", userKid[:]).Scan(&wrapped); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, mac) || !bytes.Contains(raw, wrapped) {
		t.Fatal("test is blind: the subject's lookup handle is not in the store file before erasure")
	}

	if _, err := s.Erase(ctx, r.Tenant, user, "GDPR Art. 17 request "+user); err == nil {
		t.Fatal("a basis naming the subject was accepted")
	}
	kids, err := s.Erase(ctx, r.Tenant, user, "GDPR Art. 17(1)(b) request #4711")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 1 || kids[0] != userKid {
		t.Fatalf("erased %v, want [%v]", kids, userKid)
	}
	if _, err := s.Erase(ctx, r.Tenant, user, "again"); !errors.Is(err, ErrNoSubject) {
		t.Fatalf("second erase: %v", err)
	}
	if _, err := s.Open(ctx, r.Tenant, userKid); !errors.Is(err, ErrErased) || errors.Is(err, ErrKeyMissing) {
		t.Fatalf("Open after erase: %v", err)
	}
	ts, ok, err := s.Tombstone(ctx, r.Tenant, userKid)
	if err != nil || !ok || ts.Basis != "GDPR Art. 17(1)(b) request #4711" {
		t.Fatalf("tombstone %+v %v %v", ts, ok, err)
	}

	got, openings, status, err := Open(ctx, s, r.Tenant, r.ID, env.Canonical, env.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]State{}
	for _, st := range status {
		states[st.Path] = st.State
	}
	if states["/user/id"] != Erased || states["/action/target"] != Erased || states["/human_oversight/reviewer/id"] != Clear {
		t.Fatalf("states %v", states)
	}
	opened := decodeRec(t, got)
	if opened.HumanOversight.Reviewer.ID != reviewer {
		t.Errorf("reviewer not opened: %q", opened.HumanOversight.Reviewer.ID)
	}
	if !IsSealedToken(opened.User.ID) || !IsSealedToken(opened.Action.Target) {
		t.Errorf("erased fields not left sealed: %q %q", opened.User.ID, opened.Action.Target)
	}
	s.Close()
	files := readAll(t, filepath.Dir(path))
	for _, needle := range []struct {
		name string
		b    []byte
	}{{"user id", []byte(user)}, {"target", []byte(r.Action.Target)}, {"lookup handle", mac}, {"wrapped key", wrapped}} {
		for _, hay := range []struct {
			name string
			b    []byte
		}{{"entry", entry}, {"opened record", got}, {"openings", []byte(strings.Join(func() []string {
			var v []string
			for _, o := range openings {
				v = append(v, o.Value)
			}
			return v
		}(), "\n"))}} {
			if bytes.Contains(hay.b, needle.b) {
				t.Errorf("%s contains the erased %s", hay.name, needle.name)
			}
		}
		for name, b := range files {
			if bytes.Contains(b, needle.b) {
				t.Errorf("key store file %s contains the erased %s", name, needle.name)
			}
		}
	}
	if len(files) != 1 {
		t.Errorf("files next to the store: %d, want only the store (no journal, no WAL)", len(files))
	}
}

func TestKeyMissingIsNotErased(t *testing.T) {
	ctx := context.Background()
	s, path, mk := testStore(t)
	plain, _ := demoRecords(t)
	r := decodeRec(t, plain)
	_, env := sealEntry(t, s, plain, mustPaths(t))
	// Delete the row by hand, as a botched restore would: no tombstone.
	s.Close()
	db, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, "DELETE FROM subject_keys"); err != nil {
		t.Fatal(err)
	}
	_, _, status, err := Open(ctx, db, r.Tenant, r.ID, env.Canonical, env.Sealed)
	if !errors.Is(err, ErrKeyMissing) || errors.Is(err, ErrErased) || status != nil {
		t.Fatalf("Open with a deleted row: status %v, err %v", status, err)
	}
	db.Close()
	// Lose the whole store: a new, empty one says missing, never erased.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	fresh, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, _, _, err := Open(ctx, fresh, r.Tenant, r.ID, env.Canonical, env.Sealed); !errors.Is(err, ErrKeyMissing) {
		t.Fatalf("Open with a lost store: %v", err)
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
