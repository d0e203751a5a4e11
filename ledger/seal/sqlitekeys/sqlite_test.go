package sqlitekeys

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/ledger/seal/sealtest"
)

// The key store's tests (moved from package seal when the store moved here).

func mustPaths(t testing.TB, extra ...seal.Path) *seal.Paths {
	t.Helper()
	p, err := seal.NewPaths(extra...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sealEntry seals canonical and returns the v2 entry.
func sealEntry(t testing.TB, s seal.KeyStore, canonical []byte, paths *seal.Paths) ([]byte, *seal.Envelope) {
	t.Helper()
	r := sealtest.DecodeRecord(t, canonical)
	red, fields, err := seal.Seal(context.Background(), s, r.Tenant, r.ID, canonical, paths)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := seal.NewEnvelopeV2(red, fields, sealtest.Time, true)
	if err != nil {
		t.Fatal(err)
	}
	env, err := seal.DecodeEnvelopeV2(entry)
	if err != nil {
		t.Fatalf("DecodeEnvelopeV2(NewEnvelopeV2(...)): %v\n%s", err, entry)
	}
	return entry, env
}

// testStore opens a key store in a fresh file under t.TempDir, closed at the end of the test.
func testStore(t testing.TB) (*SQLiteStore, string, *seal.MasterKey) {
	t.Helper()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := OpenSQLite(context.Background(), path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path, mk
}

func TestWrongMasterKeyRefused(t *testing.T) {
	ctx := context.Background()
	s, path, mk := testStore(t)
	kid, key, err := s.KeyFor(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	other, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, path, other, SQLiteOptions{}); !errors.Is(err, seal.ErrWrongMasterKey) {
		t.Fatalf("other master key: %v", err)
	}
	// No cache: the rows below are tampered with under the store, which reads them each time.
	s2, err := OpenSQLite(ctx, path, mk, SQLiteOptions{CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Open(ctx, "acme", kid)
	if err != nil || *got != *key {
		t.Fatalf("reopen: %v", err)
	}
	// A wrapped key moved to another row (another subject's key id) does not unwrap.
	kid2, _, err := s2.KeyFor(ctx, "acme", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.db.ExecContext(ctx, "UPDATE subject_keys SET wrapped = (SELECT wrapped FROM subject_keys WHERE key_id = ?) WHERE key_id = ?", kid[:], kid2[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Open(ctx, "acme", kid2); err == nil || errors.Is(err, seal.ErrErased) || errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("swapped wrapped key: %v", err)
	}
}

func TestStoreFileMode(t *testing.T) {
	ctx := context.Background()
	_, path, mk := testStore(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("new store mode %04o", fi.Mode().Perm())
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, path, mk, SQLiteOptions{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable store: %v", err)
	}
}

func TestKeyForConcurrent(t *testing.T) {
	ctx := context.Background()
	_, path, mk := testStore(t)
	// Two handles on one file, as lineaged and lineagectl would have.
	a, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 8
	kids := make([]seal.KeyID, 2*n)
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			kids[i], _, errs[i] = s.KeyFor(ctx, "acme", "carol")
		}()
	}
	wg.Wait()
	for i := range kids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if kids[i] != kids[0] {
			t.Fatalf("concurrent KeyFor created two keys for one subject: %v %v", kids[0], kids[i])
		}
	}
}

func TestRetention(t *testing.T) {
	ctx := context.Background()
	mk, _, err := seal.GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "keys.db"), mk, SQLiteOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	old, _, err := s.KeyFor(ctx, "acme", "old-user")
	if err != nil {
		t.Fatal(err)
	}
	active, _, err := s.KeyFor(ctx, "acme", "active-user")
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(200 * 24 * time.Hour)
	if _, _, err := s.KeyFor(ctx, "acme", "active-user"); err != nil { // seen again: last_seen moves
		t.Fatal(err)
	}
	idle, err := s.IdleKeys(ctx, "acme", now.Add(-180*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(idle) != 1 || idle[0] != old {
		t.Fatalf("idle %v, want [%v] (active %v)", idle, old, active)
	}
	done, err := s.EraseKeys(ctx, "acme", append(idle, active, seal.KeyID{9}), "retention: 180 days elapsed")
	if err != nil {
		t.Fatal(err)
	}
	// EraseKeys erases what it is given; the caller passes IdleKeys' answer. Here it was also
	// given the active key and an unknown id: the unknown one is skipped.
	if len(done) != 2 {
		t.Fatalf("erased %v", done)
	}
	if _, err := s.Open(ctx, "acme", old); !errors.Is(err, seal.ErrErased) {
		t.Fatalf("old key: %v", err)
	}
	if _, err := s.Open(ctx, "acme", seal.KeyID{9}); !errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("unknown key: %v", err)
	}
	// A subject seen again after erasure gets a new key: past records stay unreadable.
	again, _, err := s.KeyFor(ctx, "acme", "old-user")
	if err != nil {
		t.Fatal(err)
	}
	if again == old {
		t.Fatal("erased key id reused")
	}
	if _, err := s.EraseKeys(ctx, "acme", nil, ""); err == nil {
		t.Error("empty basis accepted")
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
	if _, err := s.Open(ctx, "tenant-a", k2); !errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("cross-tenant Open: %v", err)
	}
	// Same value, same path, two tenants: different commitments, ciphertexts.
	plain, _ := sealtest.DemoRecords(t)
	r := sealtest.DecodeRecord(t, plain)
	_, fa, err := seal.Seal(ctx, s, "tenant-a", r.ID, plain, mustPaths(t))
	if err != nil {
		t.Fatal(err)
	}
	_, fb, err := seal.Seal(ctx, s, "tenant-b", r.ID, plain, mustPaths(t))
	if err != nil {
		t.Fatal(err)
	}
	if fa[0].Commitment == fb[0].Commitment || fa[0].KeyID == fb[0].KeyID {
		t.Fatal("tenants' sealed fields are linkable")
	}
	// Sealing the same record twice gives fresh commitments (hiding) under the same key id.
	_, fa2, err := seal.Seal(ctx, s, "tenant-a", r.ID, plain, mustPaths(t))
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
	_, reviewed := sealtest.DemoRecords(t)
	r := sealtest.DecodeRecord(t, reviewed)
	user, reviewer := r.User.ID, r.HumanOversight.Reviewer.ID
	paths := mustPaths(t, seal.Path{Pointer: "/action/target", Subject: "/user/id"})
	entry, env := sealEntry(t, s, reviewed, paths)

	// The lookup handle of the user, to look for it in the file afterwards.
	pep, err := s.pepper(ctx, r.Tenant, false)
	if err != nil {
		t.Fatal(err)
	}
	mac := subjectMAC(pep, user)
	var userKid seal.KeyID
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
	if _, err := s.Erase(ctx, r.Tenant, user, "again"); !errors.Is(err, seal.ErrNoSubject) {
		t.Fatalf("second erase: %v", err)
	}
	if _, err := s.Open(ctx, r.Tenant, userKid); !errors.Is(err, seal.ErrErased) || errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("Open after erase: %v", err)
	}
	ts, ok, err := s.Tombstone(ctx, r.Tenant, userKid)
	if err != nil || !ok || ts.Basis != "GDPR Art. 17(1)(b) request #4711" {
		t.Fatalf("tombstone %+v %v %v", ts, ok, err)
	}

	got, openings, status, err := seal.Open(ctx, s, r.Tenant, r.ID, env.Canonical, env.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]seal.State{}
	for _, st := range status {
		states[st.Path] = st.State
	}
	if states["/user/id"] != seal.Erased || states["/action/target"] != seal.Erased || states["/human_oversight/reviewer/id"] != seal.Clear {
		t.Fatalf("states %v", states)
	}
	opened := sealtest.DecodeRecord(t, got)
	if opened.HumanOversight.Reviewer.ID != reviewer {
		t.Errorf("reviewer not opened: %q", opened.HumanOversight.Reviewer.ID)
	}
	if !seal.IsSealedToken(opened.User.ID) || !seal.IsSealedToken(opened.Action.Target) {
		t.Errorf("erased fields not left sealed: %q %q", opened.User.ID, opened.Action.Target)
	}
	s.Close()
	files := sealtest.ReadAll(t, filepath.Dir(path))
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
	plain, _ := sealtest.DemoRecords(t)
	r := sealtest.DecodeRecord(t, plain)
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
	_, _, status, err := seal.Open(ctx, db, r.Tenant, r.ID, env.Canonical, env.Sealed)
	if !errors.Is(err, seal.ErrKeyMissing) || errors.Is(err, seal.ErrErased) || status != nil {
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
	if _, _, _, err := seal.Open(ctx, fresh, r.Tenant, r.ID, env.Canonical, env.Sealed); !errors.Is(err, seal.ErrKeyMissing) {
		t.Fatalf("Open with a lost store: %v", err)
	}
}
