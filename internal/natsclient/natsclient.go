// Package natsclient holds the NATS connection settings shared by lineaged and lineagectl:
// token, user/password, NKey seed, credentials file and TLS, registered as flags with the same
// names everywhere. Secrets are read from files or the environment, never echoed.
package natsclient

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Settings are the client credentials and TLS options for one NATS connection.
type Settings struct {
	Token     string
	User      string
	Password  string
	NKeySeed  string // file holding an NKey seed (SU…)
	CredsFile string // NATS .creds file (JWT + seed)
	TLSCA     string
	TLSCert   string
	TLSKey    string
}

// Register adds the flags to fs.
func (s *Settings) Register(fs *flag.FlagSet) {
	fs.StringVar(&s.Token, "nats-token", "", "NATS token (prefer the environment variable)")
	fs.StringVar(&s.User, "nats-user", "", "NATS user name")
	fs.StringVar(&s.Password, "nats-password", "", "NATS password (prefer the environment variable)")
	fs.StringVar(&s.NKeySeed, "nats-nkey-seed", "", "file with the NKey seed to authenticate with (replies then arrive under the private inbox prefix _INBOX_<public key>)")
	fs.StringVar(&s.CredsFile, "nats-creds", "", "NATS credentials file (JWT and NKey seed)")
	fs.StringVar(&s.TLSCA, "nats-tls-ca", "", "CA file to verify the NATS server's certificate (enables TLS)")
	fs.StringVar(&s.TLSCert, "nats-tls-cert", "", "client certificate file for NATS mutual TLS")
	fs.StringVar(&s.TLSKey, "nats-tls-key", "", "client key file for NATS mutual TLS")
}

// Options turns the settings into nats.Options. At most one way to authenticate may be given.
// With an NKey seed the connection uses the publisher's private inbox prefix
// (ingest.PublisherInboxPrefix), the only one the embedded server lets that NKey read; a caller
// that needs another prefix (lineaged itself) appends its own nats.CustomInboxPrefix after
// these options.
func (s Settings) Options() ([]nats.Option, error) {
	var opts []nats.Option
	n := 0
	if s.Token != "" {
		opts = append(opts, nats.Token(s.Token))
		n++
	}
	if s.User != "" || s.Password != "" {
		if s.User == "" || s.Password == "" {
			return nil, errors.New("natsclient: --nats-user and --nats-password go together")
		}
		opts = append(opts, nats.UserInfo(s.User, s.Password))
		n++
	}
	if s.NKeySeed != "" {
		o, err := nats.NkeyOptionFromSeed(s.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("natsclient: nkey seed %s: %w", s.NKeySeed, err)
		}
		pub, err := publicKeyOfSeed(s.NKeySeed)
		if err != nil {
			return nil, fmt.Errorf("natsclient: nkey seed %s: %w", s.NKeySeed, err)
		}
		// A publisher NKey may subscribe only to its private inbox (ingest/natsserver.go).
		opts = append(opts, o, nats.CustomInboxPrefix(ingest.PublisherInboxPrefix(pub)))
		n++
	}
	if s.CredsFile != "" {
		if _, err := os.Stat(s.CredsFile); err != nil {
			return nil, fmt.Errorf("natsclient: creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(s.CredsFile))
		n++
	}
	if n > 1 {
		return nil, errors.New("natsclient: give one of token, user/password, nkey seed or creds file")
	}
	if s.TLSCA != "" {
		opts = append(opts, nats.RootCAs(s.TLSCA))
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return nil, errors.New("natsclient: --nats-tls-cert and --nats-tls-key go together")
	}
	if s.TLSCert != "" {
		opts = append(opts, nats.ClientCert(s.TLSCert, s.TLSKey))
	}
	return opts, nil
}

// Describe says how the connection authenticates, without secrets, for logs.
func (s Settings) Describe() string {
	var parts []string
	switch {
	case s.Token != "":
		parts = append(parts, "token")
	case s.User != "":
		parts = append(parts, "user "+s.User)
	case s.NKeySeed != "":
		parts = append(parts, "nkey")
	case s.CredsFile != "":
		parts = append(parts, "creds")
	default:
		parts = append(parts, "no auth")
	}
	if s.TLSCA != "" || s.TLSCert != "" {
		parts = append(parts, "tls")
	}
	return strings.Join(parts, ", ")
}

// publicKeyOfSeed reads an NKey seed file (bare or decorated, as nats.NkeyOptionFromSeed
// accepts it) and returns its public key; the seed is wiped from memory.
func publicKeyOfSeed(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	defer wipe(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return "", err
	}
	defer kp.Wipe()
	return kp.PublicKey()
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}

// SplitURLs splits a --nats-url value, one server URL or a comma-separated list of seed URLs of
// a cluster (nats.Connect takes the same list), and checks each: a URL without a scheme means
// nats://, the scheme must be nats, tls, ws or wss, and there must be a host. The URLs are
// returned trimmed, for nats.Connect to take joined by commas again.
func SplitURLs(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("natsclient: no NATS URL")
	}
	parts := strings.Split(s, ",")
	urls := make([]string, 0, len(parts))
	seen := map[string]bool{}
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("natsclient: NATS URL %d of %d is empty", i+1, len(parts))
		}
		u, err := parseServerURL(p)
		if err != nil {
			// url.Error repeats the whole URL, secrets included: keep only its reason.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("natsclient: NATS URL %d of %d (%s): %w", i+1, len(parts), RedactURL(p), err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("natsclient: NATS URL %d of %d (%s): scheme %q is not nats, tls, ws or wss", i+1, len(parts), RedactURL(p), u.Scheme)
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("natsclient: NATS URL %d of %d (%s): no host", i+1, len(parts), RedactURL(p))
		}
		if seen[u.Host] {
			return nil, fmt.Errorf("natsclient: NATS URL %d of %d (%s): %s is listed twice", i+1, len(parts), RedactURL(p), u.Host)
		}
		seen[u.Host] = true
		urls = append(urls, p)
	}
	return urls, nil
}

// parseServerURL parses one server URL the way nats.go reads it: without "://" it is nats://.
func parseServerURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	return url.Parse(s)
}

// RedactURL drops the credentials from a NATS URL, or from each URL of a comma-separated seed
// list, before it is logged. Besides a password, the user part alone is a secret too: in
// nats://<token>@host it is the token. Anything that does not parse is replaced whole.
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := parseServerURL(p)
		if err != nil {
			parts[i] = "(unparseable url)"
			continue
		}
		if u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx")
			}
		}
		if !strings.Contains(p, "://") {
			parts[i] = strings.TrimPrefix(u.String(), "nats://")
			continue
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
