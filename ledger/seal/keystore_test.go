package seal

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
