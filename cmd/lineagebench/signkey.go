package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
)

// loadSigningKey reads a private key seed written by lineagectl sourcekey create (one base64
// line, cmd/lineagectl/admin.go).
func loadSigningKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s is not a source key seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}
