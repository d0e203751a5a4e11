package cliflag

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func newSet() (*flag.FlagSet, *string, *int, *time.Duration, *bool) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	dir := fs.String("data-dir", "./data", "where state lives")
	n := fs.Int("batch-size", 1000, "records per batch")
	d := fs.Duration("ack.wait", 30*time.Second, "redelivery timeout")
	b := fs.Bool("force", false, "force it")
	return fs, dir, n, d, b
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"data-dir":     "LINEAGE_DATA_DIR",
		"ack.wait":     "LINEAGE_ACK_WAIT",
		"http-addr":    "LINEAGE_HTTP_ADDR",
		"oidc-issuer":  "LINEAGE_OIDC_ISSUER",
		"x":            "LINEAGE_X",
		"nats-tls-key": "LINEAGE_NATS_TLS_KEY",
	} {
		if got := EnvName("LINEAGE_", in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseEnvOverridesDefaults(t *testing.T) {
	t.Setenv("LINEAGE_DATA_DIR", "/srv/lineage")
	t.Setenv("LINEAGE_BATCH_SIZE", "250")
	t.Setenv("LINEAGE_ACK_WAIT", "5s")
	t.Setenv("LINEAGE_FORCE", "true")
	fs, dir, n, d, b := newSet()
	if err := Parse(fs, "LINEAGE_", nil); err != nil {
		t.Fatal(err)
	}
	if *dir != "/srv/lineage" || *n != 250 || *d != 5*time.Second || !*b {
		t.Fatalf("env not applied: dir=%q n=%d d=%v b=%v", *dir, *n, *d, *b)
	}
}

func TestParseCommandLineWins(t *testing.T) {
	t.Setenv("LINEAGE_DATA_DIR", "/from/env")
	t.Setenv("LINEAGE_BATCH_SIZE", "250")
	fs, dir, n, _, _ := newSet()
	if err := Parse(fs, "LINEAGE_", []string{"--data-dir", "/from/flag"}); err != nil {
		t.Fatal(err)
	}
	if *dir != "/from/flag" {
		t.Fatalf("data-dir = %q, want the command line's /from/flag", *dir)
	}
	if *n != 250 {
		t.Fatalf("batch-size = %d, want 250 from the environment", *n)
	}
}

func TestParseUnsetEnvKeepsDefault(t *testing.T) {
	fs, dir, n, d, b := newSet()
	if err := Parse(fs, "LINEAGE_TEST_UNSET_", nil); err != nil {
		t.Fatal(err)
	}
	if *dir != "./data" || *n != 1000 || *d != 30*time.Second || *b {
		t.Fatalf("defaults changed: dir=%q n=%d d=%v b=%v", *dir, *n, *d, *b)
	}
}

func TestParseBadEnvNamesTheVariable(t *testing.T) {
	t.Setenv("LINEAGE_BATCH_SIZE", "lots")
	fs, _, _, _, _ := newSet()
	err := Parse(fs, "LINEAGE_", nil)
	if err == nil || !strings.Contains(err.Error(), "LINEAGE_BATCH_SIZE") {
		t.Fatalf("err = %v, want one naming LINEAGE_BATCH_SIZE", err)
	}
}

func TestParseBadFlag(t *testing.T) {
	fs, _, _, _, _ := newSet()
	if err := Parse(fs, "LINEAGE_", []string{"--no-such-flag"}); err == nil {
		t.Fatal("an unknown flag was accepted")
	}
}

func TestUsageListsEnvAndDefaults(t *testing.T) {
	fs, _, _, _, _ := newSet()
	var out bytes.Buffer
	fs.SetOutput(&out)
	Usage(fs, "LINEAGE_", "lineaged serve [flags]")()
	s := out.String()
	for _, want := range []string{"lineaged serve [flags]", "--data-dir (LINEAGE_DATA_DIR)", `(default "./data")`, "--batch-size (LINEAGE_BATCH_SIZE)", "records per batch"} {
		if !strings.Contains(s, want) {
			t.Errorf("usage lacks %q:\n%s", want, s)
		}
	}
}
