package natsclient

import (
	"strings"
	"testing"
)

func TestSplitSeedURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"nats://127.0.0.1:4222", []string{"nats://127.0.0.1:4222"}},
		{"nats://a:4222,nats://b:4222,nats://c:4222", []string{"nats://a:4222", "nats://b:4222", "nats://c:4222"}},
		{" nats://a:4222 , tls://b:4222,b:4223", []string{"nats://a:4222", "tls://b:4222", "b:4223"}},
		{"nats://tok@a:4222,wss://u:p@b:443", []string{"nats://tok@a:4222", "wss://u:p@b:443"}},
	} {
		got, err := SplitURLs(tc.in)
		if err != nil {
			t.Errorf("SplitURLs(%q): %v", tc.in, err)
			continue
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSplitSeedURLsRefuses(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{"", "no NATS URL"},
		{"  ", "no NATS URL"},
		{"nats://a:4222,", "URL 2 of 2 is empty"},
		{"nats://a:4222,,nats://b:4222", "URL 2 of 3 is empty"},
		{"http://a:4222", `scheme "http"`},
		{"nats://a:4222,nats://", "no host"},
		{"nats://a:4222,nats://a:4222", "listed twice"},
		// The error names the URL without its secret.
		{"nats://u:s3cret@a:4222,ftp://u:s3cret@b:1", `URL 2 of 2 (ftp://u:xxxxx@b:1)`},
		{"nats://s3cret@a:%zz", "(unparseable url)"},
	} {
		_, err := SplitURLs(tc.in)
		if err == nil {
			t.Errorf("SplitURLs(%q) accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("SplitURLs(%q): %v, want %q in it", tc.in, err, tc.wantErr)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("SplitURLs(%q): the error shows the secret: %v", tc.in, err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"nats://alice:s3cret@a:4222", "nats://alice:xxxxx@a:4222"},
		// A lone user part is a token in NATS URLs.
		{"nats://s3cret@a:4222", "nats://xxxxx@a:4222"},
		// Each URL of a seed list, not only the first.
		{"nats://alice:s3cret@a:4222,nats://bob:s3cret2@b:4222,nats://s3cret3@c:4222",
			"nats://alice:xxxxx@a:4222,nats://bob:xxxxx@b:4222,nats://xxxxx@c:4222"},
		{"nats://a:4222, tls://u:s3cret@b:4222", "nats://a:4222,tls://u:xxxxx@b:4222"},
		// Without a scheme, as nats.go accepts it.
		{"s3cret@a:4222,b:4222", "xxxxx@a:4222,b:4222"},
		{"nats://a:4222,nats://s3cret@b:%zz", "nats://a:4222,(unparseable url)"},
	} {
		got := RedactURL(tc.in)
		if got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "s3cret") {
			t.Errorf("RedactURL(%q) = %q shows a secret", tc.in, got)
		}
	}
}
