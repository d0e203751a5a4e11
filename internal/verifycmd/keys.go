package verifycmd

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lineage-audit/lineage/internal/atomicfile"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/verify"
)

// Keys is `keys follow` of lineagectl and lineage-verify.
func Keys(env Env, args []string) error {
	if len(args) == 0 || args[0] != "follow" {
		return fmt.Errorf("usage: %s keys follow (--verifier KEY | --verifier-file FILE) (--statements PATH... | --api URL) [--out FILE]", env.Prog)
	}
	return keysFollow(env, args[1:])
}

// keysFollow is `keys follow`: from the log keys the caller trusts, follow the
// rotation statements (files, or GET /v1/keys) and write every key they link, oldest first, to
// a key file that every verify command accepts (--verifier-file).
func keysFollow(env Env, args []string) error {
	fs := flag.NewFlagSet("keys follow", flag.ContinueOnError)
	vkey := fs.String("verifier", "", "a log key you trust (name+hash+base64)")
	vfile := fs.String("verifier-file", "", "file of the log keys you trust, one per line (e.g. an old log.key.pub)")
	statements := fs.String("statements", "", "a rotation statement file, or a directory of them (*.note, e.g. data/keys/rotations); more files may follow as arguments")
	apiKey := fs.String("api-key", "", APIKeyUsage)
	api := fs.String("api", "", "fetch the statements from this Lineage API (GET /v1/keys) instead")
	out := fs.String("out", "", "write the keys to this file (default: standard output)")
	if err := parse(fs, env, "keys follow (--verifier KEY | --verifier-file FILE) (--statements PATH [FILE...] | --api URL) [--out FILE]", args); err != nil {
		return err
	}
	trusted, err := trustedKeys(*vkey, *vfile)
	if err != nil {
		return err
	}
	var sts [][]byte
	var current string // the key the API signs with now, which the chain must reach
	switch {
	case *api != "" && (*statements != "" || fs.NArg() > 0):
		return fmt.Errorf("give --statements or --api, not both")
	case *api != "":
		b, err := Call(http.MethodGet, *api, "/v1/keys", *apiKey, nil, verify.MaxKeysAnswer+1)
		if err != nil {
			return err
		}
		k, err := verify.DecodeKeys(b)
		if err != nil {
			return err
		}
		for _, s := range k.Rotations {
			sts = append(sts, []byte(s))
		}
		current = k.Current
	case *statements != "":
		if sts, err = readStatements(append([]string{*statements}, fs.Args()...)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("give --statements PATH or --api URL")
	}
	keys, err := verify.FollowRotations(trusted[len(trusted)-1], sts)
	if err != nil {
		return err
	}
	for _, k := range trusted {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("the statements link the newest trusted key, but not the trusted key %s", k)
		}
	}
	if current != "" && keys[len(keys)-1] != current {
		return fmt.Errorf("the API signs with %s, which the rotation statements do not reach from the trusted key", current)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# checkpoint keys of %s, oldest first, linked by %d rotation statements (%s keys follow)\n", keys[0][:strings.IndexByte(keys[0], '+')], len(sts), env.Prog)
	for _, k := range keys {
		b.WriteString(k + "\n")
	}
	if *out == "" {
		fmt.Print(b.String())
		return nil
	}
	if err := atomicfile.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d keys written to %s (the current key is %s)\n", len(keys), *out, keys[len(keys)-1])
	return nil
}

// trustedKeys reads the keys given by --verifier or --verifier-file, oldest first.
func trustedKeys(vkey, file string) ([]string, error) {
	text := vkey
	if file != "" {
		if vkey != "" {
			return nil, fmt.Errorf("give --verifier or --verifier-file, not both")
		}
		b, err := ledger.ReadFileLimit(file, ledger.MaxVerifierFile)
		if err != nil {
			return nil, err
		}
		text = string(b)
	}
	// ParseVerifiers checks the file (one origin, distinct keys, bounded).
	if _, err := ledger.ParseVerifiers([]byte(text)); err != nil {
		if vkey == "" && file == "" {
			return nil, fmt.Errorf("a trusted key is required: --verifier KEY or --verifier-file FILE")
		}
		return nil, err
	}
	var keys []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	return keys, nil
}

// readStatements reads rotation statement files; a directory stands for its *.note files.
func readStatements(paths []string) ([][]byte, error) {
	var sts [][]byte
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if fi.IsDir() {
			if files, err = filepath.Glob(filepath.Join(p, "*.note")); err != nil {
				return nil, err
			}
		}
		for _, f := range files {
			if len(sts) == ledger.MaxRotations {
				return nil, fmt.Errorf("more than %d rotation statements", ledger.MaxRotations)
			}
			b, err := ledger.ReadFileLimit(f, ledger.MaxRotationSize)
			if err != nil {
				return nil, fmt.Errorf("rotation statement: %w", err)
			}
			sts = append(sts, b)
		}
	}
	return sts, nil
}
