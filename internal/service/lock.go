package service

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockDataDir takes an exclusive advisory lock on <dataDir>/lineaged.lock so that two daemons,
// or a daemon and `lineagectl rebuild-index`, never write the same stores at once. It covers the
// stores in the data dir (Tessera log, SQLite index) on this machine only, not a ClickHouse
// index or a Trillian log that other hosts may share. The lock is released when the returned
// function is called or the process exits (even on SIGKILL).
//
// It creates a missing data dir with mode 0700, and refuses one that every user may write to:
// whoever can write there can replace the log, the index or the signing key.
func LockDataDir(dataDir string) (func(), error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("service: data dir: %w", err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, fmt.Errorf("service: data dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("service: data dir %s is not a directory", dataDir)
	}
	if perm := fi.Mode().Perm(); perm&0o002 != 0 {
		return nil, fmt.Errorf("service: data dir %s is writable by every user (mode %04o), who could then replace the log, the index or the signing key; make it private with: chmod 700 %s",
			dataDir, perm, dataDir)
	}
	p := filepath.Join(dataDir, "lineaged.lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("service: lock %s: %w", p, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("service: %s is in use by another lineaged or lineagectl (lock %s: %w)", dataDir, p, err)
	}
	return func() { f.Close() }, nil
}
