// Command s3server is the S3-compatible object store that testenv.StartS3 runs for the tests of
// ledger/tesseraaws: gofakes3 (github.com/johannesboyne/gofakes3) on its bolt backend, one
// bbolt file on disk written with an fsync per object, behind an AWS Signature Version 4 check.
//
// gofakes3 itself accepts any request, signed or not; this command verifies every request's
// SigV4 Authorization header against the one identity it is given (a file holding
// "ACCESS_KEY_ID:SECRET_ACCESS_KEY", so the secret is not on the command line), including the
// SHA-256 of a signed payload, and answers S3's own error codes (403
// InvalidAccessKeyId, SignatureDoesNotMatch, AccessDenied, RequestTimeTooSkewed) otherwise.
// That keeps the fail-closed tests of a wrong secret meaningful.
//
// It is its own Go module (internal/testenv/s3server/go.mod), so gofakes3 is not a dependency of
// Lineage: internal/testenv/s3.go builds it once per machine into the testenv cache.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
)

func main() {
	if err := run(); err != nil {
		slog.Error("s3server", "err", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	db := flag.String("db", "", "bbolt file holding every bucket (created if missing)")
	region := flag.String("region", "us-east-1", "the region requests must be signed for")
	bucket := flag.String("bucket", "", "a bucket to create at start if missing")
	credFile := flag.String("credentials-file", "", `file holding "ACCESS_KEY_ID:SECRET_ACCESS_KEY", the one identity accepted`)
	flag.Parse()
	raw, err := os.ReadFile(*credFile)
	if err != nil {
		return fmt.Errorf("-credentials-file: %w", err)
	}
	keyID, secret, _ := strings.Cut(strings.TrimSpace(string(raw)), ":")
	if keyID == "" || secret == "" {
		return fmt.Errorf("-credentials-file %s: want ACCESS_KEY_ID:SECRET_ACCESS_KEY", *credFile)
	}
	if *db == "" {
		return errors.New("-db is required")
	}
	backend, err := s3bolt.NewFile(*db)
	if err != nil {
		return fmt.Errorf("open %s: %w", *db, err)
	}
	if *bucket != "" {
		if err := backend.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
			return fmt.Errorf("create bucket %s: %w", *bucket, err)
		}
	}
	faker := gofakes3.New(&copyingBackend{Backend: backend},
		gofakes3.WithLogger(slogLogger{}),
		gofakes3.WithIntegrityCheck(true),
		gofakes3.WithoutVersioning(),
	)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	v := &sigV4{keyID: keyID, secret: secret, region: *region, now: time.Now}
	srv := &http.Server{Handler: v.wrap(faker.Server()), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	slog.Info("s3server listening", "addr", ln.Addr().String(), "db", *db, "region", *region)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// copyingBackend works around an aliasing bug of gofakes3's bolt backend: GetObject and
// HeadObject return the object's contents and hash as slices of bbolt's memory map (the BSON
// decoder does not copy), valid only inside the read transaction that already ended. A write
// that reuses those pages changes the bytes while they are still being served, and one that
// grows the file remaps it under them: two Tessera appenders publishing checkpoints and tiles
// made a reader get a torn checkpoint ("malformed note", TestTwoAppenders in ledger/tesseraaws),
// and TestReadsAreWholeUnderWrites without this wrapper dies of a fault address. Here reads
// copy what they return while no write runs, and every write waits for those copies.
type copyingBackend struct {
	gofakes3.Backend
	mu sync.RWMutex // read: a GetObject or HeadObject copying out; write: any change
}

func (b *copyingBackend) GetObject(bucket, name string, rng *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	o, err := b.Backend.GetObject(bucket, name, rng)
	if err != nil || o == nil {
		return o, err
	}
	data, err := io.ReadAll(o.Contents)
	o.Contents.Close()
	if err != nil {
		return nil, err
	}
	o.Contents = io.NopCloser(bytes.NewReader(data))
	o.Hash = bytes.Clone(o.Hash)
	return o, nil
}

func (b *copyingBackend) HeadObject(bucket, name string) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	o, err := b.Backend.HeadObject(bucket, name)
	if err == nil && o != nil {
		o.Hash = bytes.Clone(o.Hash)
	}
	return o, err
}

func (b *copyingBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, cond *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	// The body is read before the lock: a slow upload must not hold up every reader.
	data, err := gofakes3.ReadAll(input, size)
	if err != nil {
		return gofakes3.PutObjectResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.PutObject(bucket, key, meta, bytes.NewReader(data), size, cond)
}

func (b *copyingBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CopyObject(srcBucket, srcKey, dstBucket, dstKey, meta)
}

func (b *copyingBackend) DeleteObject(bucket, name string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteObject(bucket, name)
}

func (b *copyingBackend) DeleteMulti(bucket string, objects ...string) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteMulti(bucket, objects...)
}

func (b *copyingBackend) CreateBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CreateBucket(name)
}

func (b *copyingBackend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteBucket(name)
}

func (b *copyingBackend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.ForceDeleteBucket(name)
}

// slogLogger sends gofakes3's warnings and errors to slog; its per-request INFO lines are dropped.
type slogLogger struct{}

func (slogLogger) Print(level gofakes3.LogLevel, v ...interface{}) {
	switch level {
	case gofakes3.LogErr:
		slog.Error(fmt.Sprint(v...))
	case gofakes3.LogWarn:
		slog.Warn(fmt.Sprint(v...))
	}
}

// sigV4 checks AWS Signature Version 4 header authentication
// (AWS4-HMAC-SHA256, the scheme of the AWS SDKs) for one identity.
type sigV4 struct {
	keyID, secret, region string
	now                   func() time.Time
}

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	maxSkew      = 15 * time.Minute
	// maxSignedBody bounds the body read to check a signed payload hash.
	maxSignedBody = 64 << 20
)

func (v *sigV4) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := v.check(r); code != "" {
			slog.Warn("s3server: request refused", "method", r.Method, "path", r.URL.Path, "code", code, "msg", msg)
			writeError(w, r, http.StatusForbidden, code, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// check returns "" if r is signed by the identity, else an S3 error code and message. On
// success a signed payload has been read and checked, and r.Body replaced by its bytes.
func (v *sigV4) check(r *http.Request) (code, msg string) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "AccessDenied", "anonymous requests are refused"
	}
	rest, ok := strings.CutPrefix(auth, sigAlgorithm+" ")
	if !ok {
		return "AccessDenied", "only " + sigAlgorithm + " header authentication is supported"
	}
	var cred, signedHeaders, signature string
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signedHeaders = val
		case "Signature":
			signature = val
		}
	}
	// Credential=KEYID/DATE/REGION/SERVICE/aws4_request
	cp := strings.Split(cred, "/")
	if len(cp) != 5 || cp[4] != "aws4_request" || signedHeaders == "" || signature == "" {
		return "AuthorizationHeaderMalformed", "malformed Authorization header"
	}
	if cp[0] != v.keyID {
		return "InvalidAccessKeyId", "the access key ID does not exist"
	}
	if cp[2] != v.region || cp[3] != "s3" {
		return "AuthorizationHeaderMalformed", fmt.Sprintf("the credential scope must be region %s, service s3", v.region)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, cp[1]) {
		return "AccessDenied", "missing or malformed X-Amz-Date"
	}
	if d := v.now().Sub(t); d > maxSkew || d < -maxSkew {
		return "RequestTimeTooSkewed", "the request time is too far from the server's"
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return "AccessDenied", "missing X-Amz-Content-Sha256"
	}
	names := strings.Split(signedHeaders, ";")
	if !sort.StringsAreSorted(names) || !contains(names, "host") || !contains(names, "x-amz-date") {
		return "AuthorizationHeaderMalformed", "SignedHeaders must be sorted and include host and x-amz-date"
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n")
	canon.WriteString(r.URL.EscapedPath() + "\n")
	canon.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, n := range names {
		canon.WriteString(n + ":" + headerValue(r, n) + "\n")
	}
	canon.WriteString("\n" + signedHeaders + "\n" + payload)
	scope := strings.Join(cp[1:], "/")
	crh := sha256.Sum256([]byte(canon.String()))
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crh[:])
	key := hmacSHA256([]byte("AWS4"+v.secret), cp[1])
	for _, s := range cp[2:] {
		key = hmacSHA256(key, s)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return "SignatureDoesNotMatch", "the request signature does not match"
	}
	// A hex payload hash is part of what was signed: the body must have that hash. The other
	// forms (UNSIGNED-PAYLOAD, the STREAMING-… chunked encodings, whose chunk signatures are not
	// checked here) are passed on as they are; the tests' clients send hex hashes.
	if len(payload) == 64 {
		if _, err := hex.DecodeString(payload); err == nil {
			body, err := io.ReadAll(io.LimitReader(r.Body, maxSignedBody+1))
			if err != nil || len(body) > maxSignedBody {
				return "AccessDenied", "unreadable or oversized signed body"
			}
			sum := sha256.Sum256(body)
			if hex.EncodeToString(sum[:]) != payload {
				return "XAmzContentSHA256Mismatch", "the body does not have the signed SHA-256"
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
	}
	return "", ""
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// headerValue is the canonical value of signed header n: values joined by commas, trimmed, runs
// of spaces folded. Go's server keeps Host and Content-Length out of r.Header.
func headerValue(r *http.Request, n string) string {
	var vals []string
	switch n {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		if vs, ok := r.Header["Content-Length"]; ok {
			vals = vs
		} else {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = r.Header.Values(n)
	}
	for i, s := range vals {
		vals[i] = strings.Join(strings.Fields(s), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalQuery is SigV4's canonical query string: keys and values URI-encoded (unreserved
// characters kept), sorted by key then value.
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, val := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(val))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// writeError answers an S3 error document (no body for HEAD, as S3 does).
func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	_ = xml.NewEncoder(w).Encode(struct {
		XMLName xml.Name `xml:"Error"`
		Code    string
		Message string
	}{Code: code, Message: msg})
}
