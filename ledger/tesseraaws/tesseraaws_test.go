package tesseraaws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/ledgertest"
	"github.com/lineage-audit/lineage/ledger/tesseraaws"
	"golang.org/x/mod/sumdb/note"
)

// env is one MariaDB and one S3 server (testenv.StartS3: gofakes3, or SeaweedFS with
// LINEAGE_TEST_S3=seaweedfs) shared by a test's logs; each log gets its own database and its own
// prefix in one bucket.
type env struct {
	store  *testenv.SharedLog
	signer note.Signer
	v      note.Verifier

	mu   sync.Mutex
	logs map[string][3]string // opener dir → (DSN, bucket, prefix): the same dir reopens the same log
}

func newEnv(t testing.TB) *env {
	t.Helper()
	signer, vkey, err := ledger.LoadOrCreateSigner(filepath.Join(t.TempDir(), "log.key"), "lineage.test/tesseraaws")
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return &env{store: testenv.StartSharedLog(t), signer: signer, v: v, logs: map[string][3]string{}}
}

// options returns the options of the log stored for dir, creating its database and prefix on
// first use.
func (e *env) options(t testing.TB, dir string) tesseraaws.Options {
	t.Helper()
	e.mu.Lock()
	loc, ok := e.logs[dir]
	if !ok {
		dsn, bucket, prefix := e.store.NewLog(t, t.Name())
		loc = [3]string{dsn, bucket, prefix}
		e.logs[dir] = loc
	}
	e.mu.Unlock()
	o := tesseraaws.DefaultOptions(loc[0], loc[1], e.signer, e.v)
	o.Prefix = loc[2]
	o.Endpoint = e.store.S3.Endpoint
	o.PathStyle = true
	o.Region = e.store.Region
	o.AccessKeyID, o.SecretAccessKey = e.store.KeyID, e.store.Secret
	// Garbage collection runs often, so the suite's reads of older tree sizes meet deleted
	// partials.
	o.GCInterval = 200 * time.Millisecond
	return o
}

func (e *env) open(t testing.TB, o tesseraaws.Options) *tesseraaws.Log {
	t.Helper()
	l, err := tesseraaws.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestConformance(t *testing.T) {
	e := newEnv(t)
	// The suite's sizes as for Trillian (ledger/trillian/trillian_test.go): every published
	// checkpoint waits for the one-second minimum interval of the AWS driver.
	ledgertest.Run(t, e.v, func(t *testing.T, dir string) ledger.Log {
		return e.open(t, e.options(t, dir))
	}, ledgertest.Options{EveryPairSize: 100, LargeSize: 3000})
}

// TestTwoAppenders is the multi-node case: two logs (two lineaged processes) on one database
// and bucket add concurrently; every entry gets a distinct index, and each process reads the
// other's entries and proves them against the shared checkpoint.
func TestTwoAppenders(t *testing.T) {
	e := newEnv(t)
	o := e.options(t, "shared")
	a, b := e.open(t, o), e.open(t, o)
	const n = 600
	ctx := context.Background()
	batch := func(who string) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = []byte(fmt.Sprintf(`{"node":%q,"i":%d}`, who, i))
		}
		return out
	}
	ea, eb := batch("a"), batch("b")
	var ia, ib []uint64
	var erra, errb error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ia, erra = ledgertest.AddAll(ctx, a, ea) }()
	go func() { defer wg.Done(); ib, errb = ledgertest.AddAll(ctx, b, eb) }()
	wg.Wait()
	if erra != nil || errb != nil {
		t.Fatalf("add: %v, %v", erra, errb)
	}
	want := map[uint64][]byte{}
	for i, x := range ia {
		want[x] = ea[i]
	}
	for i, x := range ib {
		if _, dup := want[x]; dup {
			t.Fatalf("index %d was given to both appenders", x)
		}
		want[x] = eb[i]
	}
	if len(want) != 2*n {
		t.Fatalf("%d distinct indexes, want %d", len(want), 2*n)
	}
	for x := range want {
		if x >= 2*n {
			t.Fatalf("index %d beyond the %d entries added", x, 2*n)
		}
	}
	cp, err := ledgertest.WaitCheckpoint(ctx, a, e.v, 2*n)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []*tesseraaws.Log{a, b} {
		got, err := l.Entries(ctx, 0, 2*n, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		for x, g := range got {
			if string(g) != string(want[uint64(x)]) {
				t.Fatalf("index %d holds %q, want %q", x, g, want[uint64(x)])
			}
		}
		for _, x := range []uint64{ia[0], ib[n-1], ia[n/2]} {
			p, err := l.InclusionProof(ctx, x, cp.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyInclusion(want[x], x, p, cp); err != nil {
				t.Fatalf("inclusion of %d: %v", x, err)
			}
		}
	}
	for _, l := range []*tesseraaws.Log{a, b} {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := l.Close(cctx); err != nil {
			t.Error(err)
		}
		cancel()
	}
	// A read-only opener (no database) sees the same log in the bucket.
	r, err := tesseraaws.OpenReadOnly(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rcp, err := r.Checkpoint(ctx)
	if err != nil || rcp.Size != 2*n {
		t.Fatalf("read-only checkpoint size %d, %v; want %d", rcp.Size, err, 2*n)
	}
	if _, err := r.Add(ctx, []byte("x"))(); err == nil {
		t.Fatal("Add on a read-only log succeeded")
	}
}

// TestOpenFailsClosed: a missing bucket, wrong S3 credentials, an unreachable database or a
// too-short checkpoint interval is an error at Open, not a log that logs failures in the background.
func TestOpenFailsClosed(t *testing.T) {
	e := newEnv(t)
	good := e.options(t, "good")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noBucket := good
	noBucket.Bucket = "no-such-bucket"
	l, err := tesseraaws.Open(ctx, noBucket)
	if err == nil {
		l.Close(ctx)
		t.Fatal("Open with a missing bucket succeeded")
	}
	t.Logf("noBucket: %v", err)
	noDB := good
	noDB.DSN = "nobody:wrong@tcp(127.0.0.1:1)/none?timeout=2s"
	l, err = tesseraaws.Open(ctx, noDB)
	if err == nil {
		l.Close(ctx)
		t.Fatal("Open with an unreachable database succeeded")
	}
	t.Logf("noDB: %v", err)
	fast := good
	fast.CheckpointInterval = 250 * time.Millisecond
	l, err = tesseraaws.Open(ctx, fast)
	if err == nil {
		l.Close(ctx)
		t.Fatal("Open with a checkpoint interval below the minimum succeeded")
	}
	t.Logf("fast: %v", err)
	wrongCreds := good
	wrongCreds.SecretAccessKey = "wrong"
	l, err = tesseraaws.Open(ctx, wrongCreds)
	if err == nil {
		l.Close(ctx)
		t.Fatal("Open with a wrong S3 secret succeeded")
	}
	t.Logf("wrongCreds: %v", err)
	halfCreds := good
	halfCreds.SecretAccessKey = ""
	l, err = tesseraaws.Open(ctx, halfCreds)
	if err == nil {
		l.Close(ctx)
		t.Fatal("Open with an access key but no secret succeeded")
	}
	t.Logf("halfCreds: %v", err)
}

// TestStoreConditionalPut checks the S3 server honours what Tessera's AWS driver relies on when
// several appenders write one bucket (docs/SHARED-LOG.md, "Several appenders are safe"): a PUT
// with If-None-Match: * of an existing object fails with 412 PreconditionFailed and leaves the
// object as it was, and a request signed with a wrong secret is refused.
func TestStoreConditionalPut(t *testing.T) {
	e := newEnv(t)
	_, bucket, prefix := e.store.NewLog(t, t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := func(secret string) *s3.Client {
		return s3.New(s3.Options{
			Region:                     e.store.Region,
			BaseEndpoint:               aws.String(e.store.S3.Endpoint),
			UsePathStyle:               true,
			Credentials:                credentials.NewStaticCredentialsProvider(e.store.KeyID, secret, ""),
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		})
	}
	c := client(e.store.Secret)
	key := prefix + "/tile/0/000"
	put := func(c *s3.Client, body string) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body)),
			IfNoneMatch: aws.String("*"),
		})
		return err
	}
	if err := put(c, "first"); err != nil {
		t.Fatalf("first conditional PUT: %v\n%s", err, e.store.S3.Tail(20))
	}
	for _, body := range []string{"first", "second"} {
		err := put(c, body)
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
			t.Fatalf("conditional PUT of %q over an existing object: %v, want PreconditionFailed", body, err)
		}
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || string(got) != "first" {
		t.Fatalf("object holds %q (%v), want %q", got, err, "first")
	}
	err = put(client("wrong-secret"), "third")
	var api smithy.APIError
	if !errors.As(err, &api) || (api.ErrorCode() != "SignatureDoesNotMatch" && api.ErrorCode() != "AccessDenied") {
		t.Fatalf("PUT signed with a wrong secret: %v, want SignatureDoesNotMatch or AccessDenied", err)
	}
}

// BenchmarkAppend measures durable appends of the ledger/trillian benchmark's entries (about
// 700 bytes) in batches of 1000, as the ingester adds them, with the CPU used by the test
// process and by the two servers per entry.
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b)
	l := e.open(b, e.options(b, "bench"))
	const batch = 1000
	entry := func(i int) []byte { return []byte(fmt.Sprintf(`{"record":%d,"pad":"%0660d"}`, i, i)) }
	ctx := context.Background()
	es := make([][]byte, 0, batch)
	cpu0, srv0 := selfCPU(b), serverCPU(b, e)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		es = es[:0]
		for j := i; j < min(i+batch, b.N); j++ {
			es = append(es, entry(j))
		}
		if _, err := ledgertest.AddAll(ctx, l, es); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1, srv1 := selfCPU(b), serverCPU(b, e)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(b.N), "client-cpu-µs/rec")
	b.ReportMetric(float64(srv1-srv0)/float64(time.Microsecond)/float64(b.N), "server-cpu-µs/rec")
	n, err := l.Size(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ledgertest.WaitCheckpoint(ctx, l, e.v, n); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start)-elapsed)/float64(time.Millisecond), "checkpoint-lag-ms")
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := l.Close(cctx); err != nil {
		b.Fatal(err)
	}
}

func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func serverCPU(b *testing.B, e *env) time.Duration {
	d, err := e.store.ServerCPU()
	if err != nil {
		b.Fatal(err)
	}
	return d
}
