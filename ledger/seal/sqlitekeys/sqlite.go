// Package sqlitekeys is the embedded erasure key store (docs/ERASURE.md): one SQLite file
// holding the tenants' peppers, the subject keys and the erasure tombstones, every secret
// wrapped under a seal.Wrapper (the master key). It is apart from package seal so that the
// offline verifiers, which need seal's entry format and commitments, link no SQLite.
package sqlitekeys

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/lineage-audit/lineage/ledger/seal"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-sqlite3"
)

// SQLiteStore is the embedded KeyStore: one SQLite file holding the tenants' peppers, the
// subject keys and the erasure tombstones, every secret wrapped under a Wrapper (the master
// key). See docs/ERASURE.md for the schema and why each setting is what it is.
//
// The database runs with secure_delete on, so that SQLite overwrites a deleted row's bytes
// with zeros in the file, and with a rollback journal (journal_mode=DELETE) instead of WAL, so
// that an erased key's old page does not linger in a write-ahead log until the next
// checkpoint; synchronous=FULL makes each key creation and erasure durable when it returns.
type SQLiteStore struct {
	db   *sql.DB
	wrap seal.Wrapper
	now  func() time.Time

	mu      sync.Mutex
	peppers map[string][]byte // tenant → pepper, unwrapped (peppers are never erased)

	cache *keyCache // nil when SQLiteOptions.CacheSize < 0 (cache.go)
}

var _ seal.KeyStore = (*SQLiteStore)(nil)

// SQLiteOptions configures OpenSQLite. The zero value is valid.
type SQLiteOptions struct {
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// CacheSize is how many unwrapped subject keys are kept in memory (cache.go): 0 means
	// DefaultCacheSize, a negative value no cache.
	CacheSize int
}

// lastSeenGranularity is how stale a subject key's last_seen may get before KeyFor writes it
// again: retention needs days, and writing on every record would make every KeyFor a write.
const lastSeenGranularity = time.Hour

// maxBasisLen bounds an erasure's recorded legal basis.
const maxBasisLen = 1024

// storeSchema creates the key store's tables. key_id is UNIQUE across tenants: key ids are
// random 128-bit values, and Open finds a key by id alone.
const storeSchema = `
CREATE TABLE IF NOT EXISTS meta (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS peppers (
	tenant  TEXT PRIMARY KEY,
	wrapped BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS subject_keys (
	tenant      TEXT NOT NULL,
	subject_mac BLOB NOT NULL,
	key_id      BLOB NOT NULL UNIQUE,
	wrapped     BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	PRIMARY KEY (tenant, subject_mac)
);
CREATE INDEX IF NOT EXISTS subject_keys_last_seen ON subject_keys (tenant, last_seen);
CREATE TABLE IF NOT EXISTS tombstones (
	key_id    BLOB PRIMARY KEY,
	tenant    TEXT NOT NULL,
	erased_at INTEGER NOT NULL,
	basis     TEXT NOT NULL
) WITHOUT ROWID;
`

// storeVersion is the schema version in meta.
const storeVersion = "1"

// Associated-data tags of the wrapped values.
const (
	adCheck  = "lineage/seal/v1 master key check\x00"
	adPepper = "lineage/seal/v1 pepper\x00"
	adKey    = "lineage/seal/v1 subject key\x00"
)

// OpenSQLite opens (creating it if needed, mode 0600) the key store at path, with w (normally a
// *MasterKey) wrapping its secrets. A new store records a check value wrapped under w; an
// existing one must unwrap it, or OpenSQLite fails with an error wrapping ErrWrongMasterKey. It
// refuses a file others can read or anyone but its owner can write, like the master key file.
func OpenSQLite(ctx context.Context, path string, w seal.Wrapper, o SQLiteOptions) (*SQLiteStore, error) {
	if path == "" || strings.ContainsAny(path, "?") || path == ":memory:" {
		return nil, fmt.Errorf("seal: key store %q: path must be a file path without '?'", path)
	}
	if w == nil {
		return nil, fmt.Errorf("seal: key store %s: no master key", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("seal: key store: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("seal: key store: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o027 != 0 {
		return nil, fmt.Errorf("seal: key store %s: mode %04o lets others read or write it; chmod 600 it", path, perm)
	}
	dsn := path + "?" + strings.Join([]string{
		"_secure_delete=on",
		"_journal_mode=DELETE",
		"_synchronous=FULL",
		"_busy_timeout=10000",
		"_txlock=immediate",
	}, "&")
	db := sql.OpenDB(connector{dsn: dsn, driver: &sqlite3.SQLiteDriver{}})
	// One connection: key-store traffic is small, and one connection never waits on itself.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	s := &SQLiteStore{db: db, wrap: w, now: o.Now, peppers: map[string][]byte{}, cache: newKeyCache(o.CacheSize)}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("seal: key store %s: %w", path, err)
	}
	return s, nil
}

// connector opens connections with its own driver value instead of the globally registered
// "sqlite3", so the package changes no global state (as query/index/sqlite/sqlite.go does).
type connector struct {
	dsn    string
	driver *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.driver.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.driver }

// init checks the pragmas that erasure relies on, creates the schema and checks the master key.
func (s *SQLiteStore) init(ctx context.Context) error {
	var sd int
	if err := s.db.QueryRowContext(ctx, "PRAGMA secure_delete").Scan(&sd); err != nil {
		return fmt.Errorf("secure_delete: %w", err)
	}
	if sd != 1 {
		return fmt.Errorf("secure_delete is %d, want 1: erased keys would stay in the file", sd)
	}
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "delete") {
		return fmt.Errorf("journal mode is %q, want delete", mode)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, storeSchema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	var version []byte
	switch err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = 'version'").Scan(&version); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (name, value) VALUES ('version', ?)", []byte(storeVersion)); err != nil {
			return fmt.Errorf("version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("version: %w", err)
	case string(version) != storeVersion:
		return fmt.Errorf("schema version %q, want %q", version, storeVersion)
	}
	var check []byte
	switch err := tx.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = 'check'").Scan(&check); {
	case errors.Is(err, sql.ErrNoRows):
		var r [seal.KeySize]byte
		if _, err := rand.Read(r[:]); err != nil {
			return fmt.Errorf("check value: %w", err)
		}
		wrapped, err := s.wrap.Wrap(ctx, r[:], []byte(adCheck))
		if err != nil {
			return fmt.Errorf("check value: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO meta (name, value) VALUES ('check', ?)", wrapped); err != nil {
			return fmt.Errorf("check value: %w", err)
		}
	case err != nil:
		return fmt.Errorf("check value: %w", err)
	default:
		if _, err := s.wrap.Unwrap(ctx, check, []byte(adCheck)); err != nil {
			return fmt.Errorf("%w (the key store was created with another master key: %v)", seal.ErrWrongMasterKey, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Close closes the database and forgets the cached peppers.
func (s *SQLiteStore) Close() error {
	s.mu.Lock()
	for t, p := range s.peppers {
		clear(p)
		delete(s.peppers, t)
	}
	s.mu.Unlock()
	s.cache.close()
	return s.db.Close()
}

func pepperAD(tenant string) []byte { return append([]byte(adPepper), tenant...) }

func keyAD(tenant string, mac []byte, kid seal.KeyID) []byte {
	ad := make([]byte, 0, len(adKey)+4+len(tenant)+len(mac)+seal.KeyIDSize)
	ad = append(ad, adKey...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(tenant)))
	ad = append(ad, tenant...)
	ad = append(ad, mac...)
	return append(ad, kid[:]...)
}

// pepper returns tenant's pepper, creating it when create is set; nil (and no error) when it
// does not exist and create is not set.
func (s *SQLiteStore) pepper(ctx context.Context, tenant string, create bool) ([]byte, error) {
	s.mu.Lock()
	p, ok := s.peppers[tenant]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	var wrapped []byte
	err := s.db.QueryRowContext(ctx, "SELECT wrapped FROM peppers WHERE tenant = ?", tenant).Scan(&wrapped)
	if errors.Is(err, sql.ErrNoRows) {
		if !create {
			return nil, nil
		}
		var fresh [seal.KeySize]byte
		if _, err := rand.Read(fresh[:]); err != nil {
			return nil, fmt.Errorf("pepper: %w", err)
		}
		w, werr := s.wrap.Wrap(ctx, fresh[:], pepperAD(tenant))
		clear(fresh[:])
		if werr != nil {
			return nil, fmt.Errorf("pepper: %w", werr)
		}
		// Another process may have created it meanwhile: keep theirs.
		if _, ierr := s.db.ExecContext(ctx, "INSERT INTO peppers (tenant, wrapped) VALUES (?, ?) ON CONFLICT DO NOTHING", tenant, w); ierr != nil {
			return nil, fmt.Errorf("pepper: %w", ierr)
		}
		err = s.db.QueryRowContext(ctx, "SELECT wrapped FROM peppers WHERE tenant = ?", tenant).Scan(&wrapped)
	}
	if err != nil {
		return nil, fmt.Errorf("pepper: %w", err)
	}
	p, err = s.wrap.Unwrap(ctx, wrapped, pepperAD(tenant))
	if err != nil {
		return nil, fmt.Errorf("pepper of tenant %q: %w", tenant, err)
	}
	if len(p) != seal.KeySize {
		return nil, fmt.Errorf("pepper of tenant %q: %d bytes", tenant, len(p))
	}
	s.mu.Lock()
	s.peppers[tenant] = p
	s.mu.Unlock()
	return p, nil
}

// subjectMAC is the lookup handle of a subject: HMAC-SHA256(pepper, subject).
func subjectMAC(pepper []byte, subject string) []byte {
	h := hmac.New(sha256.New, pepper)
	h.Write([]byte(subject))
	return h.Sum(nil)
}

// KeyFor returns the key of (tenant, subject), creating it on first use.
func (s *SQLiteStore) KeyFor(ctx context.Context, tenant, subject string) (seal.KeyID, *seal.Key, error) {
	if tenant == "" || subject == "" {
		return seal.KeyID{}, nil, errors.New("seal: key for: empty tenant or subject")
	}
	p, err := s.pepper(ctx, tenant, true)
	if err != nil {
		return seal.KeyID{}, nil, fmt.Errorf("seal: key for: %w", err)
	}
	mac := subjectMAC(p, subject)
	now := s.now().Unix()
	kid, key, lastSeen, ok := s.cache.bySubject(tenant, mac)
	if !ok {
		gen := s.cache.generation()
		kid, key, lastSeen, err = s.lookup(ctx, tenant, mac)
		if errors.Is(err, sql.ErrNoRows) {
			kid, key, lastSeen, err = s.create(ctx, tenant, mac, now)
		}
		if err != nil {
			return seal.KeyID{}, nil, fmt.Errorf("seal: key for tenant %q: %w", tenant, err)
		}
		s.cache.put(gen, tenant, mac, kid, key, lastSeen)
	}
	if now-lastSeen >= int64(lastSeenGranularity/time.Second) {
		if _, err := s.db.ExecContext(ctx, "UPDATE subject_keys SET last_seen = ? WHERE key_id = ? AND last_seen < ?",
			now, kid[:], now); err != nil {
			clear(key[:])
			return seal.KeyID{}, nil, fmt.Errorf("seal: key for tenant %q: last seen: %w", tenant, err)
		}
		s.cache.seen(kid, now)
	}
	return kid, key, nil
}

// lookup reads and unwraps a subject's key; sql.ErrNoRows when there is none.
func (s *SQLiteStore) lookup(ctx context.Context, tenant string, mac []byte) (seal.KeyID, *seal.Key, int64, error) {
	var kidb, wrapped []byte
	var lastSeen int64
	err := s.db.QueryRowContext(ctx, "SELECT key_id, wrapped, last_seen FROM subject_keys WHERE tenant = ? AND subject_mac = ?",
		tenant, mac).Scan(&kidb, &wrapped, &lastSeen)
	if err != nil {
		return seal.KeyID{}, nil, 0, err
	}
	var kid seal.KeyID
	if len(kidb) != seal.KeyIDSize {
		return seal.KeyID{}, nil, 0, fmt.Errorf("key id of %d bytes in the store", len(kidb))
	}
	copy(kid[:], kidb)
	key, err := s.unwrapKey(ctx, tenant, mac, kid, wrapped)
	return kid, key, lastSeen, err
}

func (s *SQLiteStore) unwrapKey(ctx context.Context, tenant string, mac []byte, kid seal.KeyID, wrapped []byte) (*seal.Key, error) {
	raw, err := s.wrap.Unwrap(ctx, wrapped, keyAD(tenant, mac, kid))
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", kid, err)
	}
	defer clear(raw)
	if len(raw) != seal.KeySize {
		return nil, fmt.Errorf("key %s: %d bytes", kid, len(raw))
	}
	key := new(seal.Key)
	copy(key[:], raw)
	return key, nil
}

// create makes a new key for the subject, or returns the one another writer made first.
func (s *SQLiteStore) create(ctx context.Context, tenant string, mac []byte, now int64) (seal.KeyID, *seal.Key, int64, error) {
	var kid seal.KeyID
	key := new(seal.Key)
	if _, err := rand.Read(kid[:]); err != nil {
		return seal.KeyID{}, nil, 0, fmt.Errorf("key id: %w", err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return seal.KeyID{}, nil, 0, fmt.Errorf("key: %w", err)
	}
	wrapped, err := s.wrap.Wrap(ctx, key[:], keyAD(tenant, mac, kid))
	if err != nil {
		return seal.KeyID{}, nil, 0, fmt.Errorf("wrap: %w", err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO subject_keys (tenant, subject_mac, key_id, wrapped, created_at, last_seen)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, subject_mac) DO NOTHING`, tenant, mac, kid[:], wrapped, now, now)
	if err != nil {
		return seal.KeyID{}, nil, 0, fmt.Errorf("insert key: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 1 {
		return kid, key, now, nil
	}
	clear(key[:])
	return s.lookup(ctx, tenant, mac) // lost a race with another process
}

// Open returns the key kid of tenant, or an error wrapping ErrErased or ErrKeyMissing.
func (s *SQLiteStore) Open(ctx context.Context, tenant string, kid seal.KeyID) (*seal.Key, error) {
	if key, ok := s.cache.byID(tenant, kid); ok {
		return key, nil
	}
	gen := s.cache.generation()
	var t string
	var mac, wrapped []byte
	var lastSeen int64
	err := s.db.QueryRowContext(ctx, "SELECT tenant, subject_mac, wrapped, last_seen FROM subject_keys WHERE key_id = ?", kid[:]).
		Scan(&t, &mac, &wrapped, &lastSeen)
	switch {
	case err == nil && t == tenant:
		key, err := s.unwrapKey(ctx, tenant, mac, kid, wrapped)
		if err != nil {
			return nil, fmt.Errorf("seal: open key: %w", err)
		}
		s.cache.put(gen, tenant, mac, kid, key, lastSeen)
		return key, nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("seal: open key %s: %w", kid, err)
	}
	var erasedAt int64
	err = s.db.QueryRowContext(ctx, "SELECT erased_at FROM tombstones WHERE key_id = ? AND tenant = ?", kid[:], tenant).Scan(&erasedAt)
	switch {
	case err == nil:
		return nil, fmt.Errorf("key %s of tenant %q, erased at %s: %w", kid, tenant,
			time.Unix(erasedAt, 0).UTC().Format(time.RFC3339), seal.ErrErased)
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("key %s of tenant %q: %w", kid, tenant, seal.ErrKeyMissing)
	default:
		return nil, fmt.Errorf("seal: open key %s: tombstone: %w", kid, err)
	}
}

// checkBasis refuses an empty, oversized or unprintable legal basis, and one that names the
// subject (a tombstone must hold no personal data).
func checkBasis(basis, subject string) error {
	if strings.TrimSpace(basis) == "" {
		return errors.New("seal: erase: a legal basis is required")
	}
	if len(basis) > maxBasisLen {
		return fmt.Errorf("seal: erase: legal basis longer than %d bytes", maxBasisLen)
	}
	if !utf8.ValidString(basis) {
		return errors.New("seal: erase: legal basis is not UTF-8")
	}
	for _, r := range basis {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return fmt.Errorf("seal: erase: legal basis contains control character %U", r)
		}
	}
	if subject != "" && strings.Contains(strings.ToLower(basis), strings.ToLower(subject)) {
		return errors.New("seal: erase: the legal basis names the subject; tombstones must hold no personal data")
	}
	return nil
}

// Erase destroys the key of (tenant, subject) and leaves a tombstone, in one transaction.
func (s *SQLiteStore) Erase(ctx context.Context, tenant, subject, basis string) ([]seal.KeyID, error) {
	if tenant == "" || subject == "" {
		return nil, errors.New("seal: erase: empty tenant or subject")
	}
	if err := checkBasis(basis, subject); err != nil {
		return nil, err
	}
	p, err := s.pepper(ctx, tenant, false)
	if err != nil {
		return nil, fmt.Errorf("seal: erase: %w", err)
	}
	if p == nil {
		return nil, fmt.Errorf("seal: erase in tenant %q: %w", tenant, seal.ErrNoSubject)
	}
	mac := subjectMAC(p, subject)
	var kids []seal.KeyID
	// After the commit (or the rollback): the cache forgets the destroyed key (cache.go).
	defer func() { s.cache.drop(kids) }()
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var kidb []byte
		err := tx.QueryRowContext(ctx, "SELECT key_id FROM subject_keys WHERE tenant = ? AND subject_mac = ?", tenant, mac).Scan(&kidb)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("tenant %q: %w", tenant, seal.ErrNoSubject)
		}
		if err != nil {
			return err
		}
		var kid seal.KeyID
		copy(kid[:], kidb)
		if err := s.tombstone(ctx, tx, tenant, kid, basis); err != nil {
			return err
		}
		kids = append(kids, kid)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal: erase: %w", err)
	}
	return kids, nil
}

// EraseKeys destroys keys by id (retention erases subjects it knows only by key id, from
// IdleKeys) and leaves tombstones, in one transaction. It returns the ids it destroyed; ids
// with no key in tenant (already erased, unknown) are skipped.
func (s *SQLiteStore) EraseKeys(ctx context.Context, tenant string, kids []seal.KeyID, basis string) ([]seal.KeyID, error) {
	if err := checkBasis(basis, ""); err != nil {
		return nil, err
	}
	var done []seal.KeyID
	defer func() { s.cache.drop(done) }() // after the commit or the rollback (cache.go)
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, kid := range kids {
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM subject_keys WHERE key_id = ? AND tenant = ?", kid[:], tenant).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				continue
			}
			if err := s.tombstone(ctx, tx, tenant, kid, basis); err != nil {
				return err
			}
			done = append(done, kid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal: erase keys: %w", err)
	}
	return done, nil
}

// tombstone deletes key kid and records its tombstone, inside tx.
func (s *SQLiteStore) tombstone(ctx context.Context, tx *sql.Tx, tenant string, kid seal.KeyID, basis string) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM subject_keys WHERE key_id = ? AND tenant = ?", kid[:], tenant); err != nil {
		return fmt.Errorf("delete key %s: %w", kid, err)
	}
	return s.insertTombstone(ctx, tx, tenant, kid, basis)
}

// insertTombstone records kid's tombstone, inside tx.
func (s *SQLiteStore) insertTombstone(ctx context.Context, tx *sql.Tx, tenant string, kid seal.KeyID, basis string) error {
	if _, err := tx.ExecContext(ctx, "INSERT INTO tombstones (key_id, tenant, erased_at, basis) VALUES (?, ?, ?, ?)",
		kid[:], tenant, s.now().Unix(), basis); err != nil {
		return fmt.Errorf("tombstone %s: %w", kid, err)
	}
	return nil
}

func (s *SQLiteStore) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// IdleKeys returns the ids of tenant's subject keys not used (by KeyFor) since before, to at
// most the hour: the subjects a retention window may erase with EraseKeys.
func (s *SQLiteStore) IdleKeys(ctx context.Context, tenant string, before time.Time) ([]seal.KeyID, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT key_id FROM subject_keys WHERE tenant = ? AND last_seen < ? ORDER BY key_id",
		tenant, before.Unix())
	if err != nil {
		return nil, fmt.Errorf("seal: idle keys: %w", err)
	}
	defer rows.Close()
	var out []seal.KeyID
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("seal: idle keys: %w", err)
		}
		var kid seal.KeyID
		copy(kid[:], b)
		out = append(out, kid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seal: idle keys: %w", err)
	}
	return out, nil
}

// Tombstone returns the tombstone of kid in tenant, and whether there is one.
func (s *SQLiteStore) Tombstone(ctx context.Context, tenant string, kid seal.KeyID) (seal.Tombstone, bool, error) {
	var at int64
	var basis string
	err := s.db.QueryRowContext(ctx, "SELECT erased_at, basis FROM tombstones WHERE key_id = ? AND tenant = ?", kid[:], tenant).Scan(&at, &basis)
	if errors.Is(err, sql.ErrNoRows) {
		return seal.Tombstone{}, false, nil
	}
	if err != nil {
		return seal.Tombstone{}, false, fmt.Errorf("seal: tombstone: %w", err)
	}
	return seal.Tombstone{KeyID: kid, Tenant: tenant, ErasedAt: time.Unix(at, 0).UTC(), Basis: basis}, true, nil
}

// Tombstones lists every tombstone in the store (all tenants), oldest first: the key ids a
// restart must make sure were purged from the index.
func (s *SQLiteStore) Tombstones(ctx context.Context) ([]seal.Tombstone, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT key_id, tenant, erased_at, basis FROM tombstones ORDER BY erased_at, key_id")
	if err != nil {
		return nil, fmt.Errorf("seal: tombstones: %w", err)
	}
	defer rows.Close()
	var out []seal.Tombstone
	for rows.Next() {
		var b []byte
		var t seal.Tombstone
		var at int64
		if err := rows.Scan(&b, &t.Tenant, &at, &t.Basis); err != nil {
			return nil, fmt.Errorf("seal: tombstones: %w", err)
		}
		if len(b) != seal.KeyIDSize {
			return nil, errors.New("seal: tombstones: malformed key id")
		}
		copy(t.KeyID[:], b)
		t.ErasedAt = time.Unix(at, 0).UTC()
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("seal: tombstones: %w", err)
	}
	return out, nil
}
