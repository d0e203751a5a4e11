package service

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockDataDir takes an exclusive advisory lock on <dataDir>/lineaged.lock so that two daemons,
// or a daemon and `lineagectl rebuild-index`, never write the same stores at once. The lock is
// released when the returned function is called or the process exits (even on SIGKILL).
func LockDataDir(dataDir string) (func(), error) {
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("service: data dir: %w", err)
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
