package seal

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseMasterKey(t *testing.T) {
	var raw [KeySize]byte
	for i := range raw {
		raw[i] = byte(i*37 + 11)
	}
	for _, text := range []string{
		hex.EncodeToString(raw[:]),
		strings.ToUpper(hex.EncodeToString(raw[:])),
		base64.StdEncoding.EncodeToString(raw[:]),
		base64.RawURLEncoding.EncodeToString(raw[:]) + "\n",
	} {
		k, err := ParseMasterKey([]byte(text))
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		if k.key != raw {
			t.Fatalf("%q: wrong key", text)
		}
	}
	for text, want := range map[string]string{
		"":                           "empty",
		"secret":                     "not hex or base64",
		hex.EncodeToString(raw[:16]): "16 bytes",
		base64.StdEncoding.EncodeToString(append(raw[:], 1)):                          "33 bytes",
		strings.Repeat("00", 32):                                                      "distinct",
		strings.Repeat("0102", 16):                                                    "distinct",
		base64.StdEncoding.EncodeToString([]byte("passwordpasswordpasswordpassword")): "distinct",
	} {
		if _, err := ParseMasterKey([]byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", text, err, want)
		}
	}
}

func TestLoadMasterKey(t *testing.T) {
	_, text, err := GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "master.key")
	if err := os.WriteFile(path, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadMasterKeyFile(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o604, 0o620, 0o666} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadMasterKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v", mode, err)
		}
	}
	if err := os.Chmod(path, 0o640); err != nil { // group-readable is allowed (a service group)
		t.Fatal(err)
	}
	if _, err := LoadMasterKeyFile(path); err != nil {
		t.Errorf("mode 0640: %v", err)
	}
	if _, err := LoadMasterKeyFile(dir); err == nil {
		t.Error("a directory was accepted")
	}
	t.Setenv("LINEAGE_TEST_MASTER_KEY", text)
	if _, err := LoadMasterKeyEnv("LINEAGE_TEST_MASTER_KEY"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LINEAGE_TEST_MASTER_KEY", "short")
	if _, err := LoadMasterKeyEnv("LINEAGE_TEST_MASTER_KEY"); err == nil || !strings.Contains(err.Error(), "LINEAGE_TEST_MASTER_KEY") {
		t.Errorf("bad env key: %v", err)
	}
	if _, err := LoadMasterKeyEnv("LINEAGE_TEST_NO_SUCH_VARIABLE"); err == nil {
		t.Error("unset variable accepted")
	}
}

func TestWrongMasterKeyRefused(t *testing.T) {
	ctx := context.Background()
	s, path, mk := testStore(t)
	kid, key, err := s.KeyFor(ctx, "acme", "alice")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	other, _, err := GenerateMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSQLite(ctx, path, other, SQLiteOptions{}); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("other master key: %v", err)
	}
	s2, err := OpenSQLite(ctx, path, mk, SQLiteOptions{})
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
	if _, err := s2.Open(ctx, "acme", kid2); err == nil || errors.Is(err, ErrErased) || errors.Is(err, ErrKeyMissing) {
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
	kids := make([]KeyID, 2*n)
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
	mk, _, err := GenerateMasterKey()
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
	done, err := s.EraseKeys(ctx, "acme", append(idle, active, KeyID{9}), "retention: 180 days elapsed")
	if err != nil {
		t.Fatal(err)
	}
	// EraseKeys erases what it is given; the caller passes IdleKeys' answer. Here it was also
	// given the active key and an unknown id: the unknown one is skipped.
	if len(done) != 2 {
		t.Fatalf("erased %v", done)
	}
	if _, err := s.Open(ctx, "acme", old); !errors.Is(err, ErrErased) {
		t.Fatalf("old key: %v", err)
	}
	if _, err := s.Open(ctx, "acme", KeyID{9}); !errors.Is(err, ErrKeyMissing) {
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
