// Package tesseraaws is a ledger.Log on Tessera's AWS storage driver
// (github.com/transparency-dev/tessera/storage/aws) pointed at any MySQL-compatible database
// (MariaDB) and any S3-compatible object store (SeaweedFS, MinIO, Amazon S3): the shared log
// storage that lets several lineaged processes on different machines append to one log.
//
// The database sequences: every Add batch is committed as one row of its Seq table under a row
// lock on SeqCoord, so any number of appenders (one per lineaged) share one index space, and a
// resolved future means the batch is durable in the database (committed with InnoDB's redo log
// flushed at commit, docs/SHARED-LOG.md). An integrator (whichever appender holds the IntCoord
// row lock) then writes the entry bundles and hash tiles to the bucket, and a checkpoint is
// published to the bucket at most once per CheckpointInterval (at least one second: the AWS
// driver refuses less). The bucket is a complete C2SP tlog-tiles log, like ledger/tessera's
// directory.
//
// Reads go to the bucket through this package's own S3 reads (read.go): Tessera's AWS reader
// does not map a missing tile or bundle to fs.ErrNotExist, so its fallback from a missing
// partial to the full resource never fires, and a tree size older than the latest needs the
// wider-partial fallback ledger/internal/tesseralog/read.go describes.
package tesseraaws

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/internal/tesseralog"
	"github.com/transparency-dev/tessera"
	tessaws "github.com/transparency-dev/tessera/storage/aws"
	"golang.org/x/mod/sumdb/note"
)

// MinCheckpointInterval is the smallest CheckpointInterval Tessera's AWS driver accepts.
const MinCheckpointInterval = time.Second

// Options configures a log on a MySQL-compatible database and an S3-compatible bucket.
type Options struct {
	// DSN is the go-sql-driver/mysql DSN of the sequencing database, e.g.
	// "lineage:secret@tcp(db1:3306)/lineage_log". Tessera creates its tables in it.
	DSN string
	// MaxOpenConns and MaxIdleConns size the database pool (0: the driver's defaults).
	MaxOpenConns, MaxIdleConns int

	// Bucket holds the log's tiles, entry bundles and checkpoint; it must exist.
	Bucket string
	// Prefix, if set, is prepended to every object name ("log1" stores "log1/checkpoint").
	Prefix string
	// Endpoint is the S3 endpoint URL, e.g. "http://s3.internal:8333". Empty uses AWS's
	// endpoint for Region.
	Endpoint string
	// Region is the S3 region (S3-compatible servers accept any; "us-east-1" if empty).
	Region string
	// AccessKeyID and SecretAccessKey are static S3 credentials. Both empty use the AWS SDK's
	// default credential chain (environment, shared files, instance role).
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY rather than BUCKET.ENDPOINT/KEY;
	// most S3-compatible servers need it.
	PathStyle bool

	// Signer signs checkpoints; its name is the log origin.
	Signer note.Signer
	// Verifier checks checkpoints read back from the bucket.
	Verifier note.Verifier
	// BatchMaxSize and BatchMaxAge bound one sequencing batch (one database transaction).
	BatchMaxSize uint
	BatchMaxAge  time.Duration
	// CheckpointInterval is how often a new signed checkpoint is published while the log grows;
	// at least MinCheckpointInterval.
	CheckpointInterval time.Duration
	// MaxOutstanding bounds entries sequenced but not yet integrated (Tessera pushback).
	MaxOutstanding uint
	// GCInterval is how often partial tiles and bundles made obsolete by growth are deleted
	// from the bucket (0: never). Reads of older tree sizes fall back to wider versions.
	GCInterval time.Duration
}

// DefaultOptions returns the ingest-path options of ledger/tessera.DefaultOptions, except the
// checkpoint interval, which the AWS driver does not allow below one second.
func DefaultOptions(dsn, bucket string, s note.Signer, v note.Verifier) Options {
	return Options{
		DSN:                dsn,
		Bucket:             bucket,
		Region:             "us-east-1",
		Signer:             s,
		Verifier:           v,
		BatchMaxSize:       1024,
		BatchMaxAge:        5 * time.Millisecond,
		CheckpointInterval: MinCheckpointInterval,
		MaxOutstanding:     1 << 16,
		GCInterval:         time.Minute,
	}
}

// Log is a ledger.Log on Tessera's AWS driver.
type Log struct {
	bucket *bucket
	size   func(context.Context) (uint64, error) // the sequenced size, from the database
	// read serves the checkpoint, entries and proofs from the bucket (read.go); write adds with
	// Tessera's appender (none on a read-only log).
	read  *tesseralog.Reader
	write tesseralog.Writer
}

var _ ledger.Log = (*Log)(nil)

// Open opens (or creates) the log for appending. Any number of processes may open the same
// database and bucket at once: the database serializes sequencing and integration.
func Open(ctx context.Context, o Options) (*Log, error) {
	if o.Signer == nil || o.Verifier == nil {
		return nil, errors.New("tesseraaws: signer and verifier are required")
	}
	if o.DSN == "" || o.Bucket == "" {
		return nil, errors.New("tesseraaws: a database DSN and a bucket are required")
	}
	if o.CheckpointInterval < MinCheckpointInterval {
		return nil, fmt.Errorf("tesseraaws: checkpoint interval %v is below the AWS driver's minimum %v", o.CheckpointInterval, MinCheckpointInterval)
	}
	sdk, s3opts, err := s3Config(ctx, o)
	if err != nil {
		return nil, err
	}
	b := &bucket{client: s3.NewFromConfig(sdk, s3opts), name: o.Bucket, prefix: o.Prefix}
	// Fail closed on an unreachable or missing bucket before Tessera starts its background work
	// (which would only log its failures).
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	driver, err := tessaws.New(ctx, tessaws.Config{
		SDKConfig:    &sdk,
		S3Options:    s3opts,
		Bucket:       o.Bucket,
		BucketPrefix: o.Prefix,
		DSN:          o.DSN,
		MaxOpenConns: o.MaxOpenConns,
		MaxIdleConns: o.MaxIdleConns,
		HTTPClient:   &http.Client{Timeout: time.Minute},
	})
	if err != nil {
		return nil, fmt.Errorf("tesseraaws: driver: %w", err)
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(o.Signer).
		WithBatching(o.BatchMaxSize, o.BatchMaxAge).
		WithCheckpointInterval(o.CheckpointInterval).
		WithPushback(o.MaxOutstanding).
		WithGarbageCollectionInterval(o.GCInterval)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a, shutdown, r, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tesseraaws: appender on bucket %s: %w", o.Bucket, err)
	}
	return newLog(&Log{bucket: b, write: tesseralog.Writer{Name: "tesseraaws", Appender: a, Shutdown: shutdown, Cancel: cancel}, size: r.NextIndex}, o.Verifier), nil
}

// OpenReadOnly opens the log in the bucket for reading only: no database is needed, and the
// size is that of the latest published checkpoint.
func OpenReadOnly(ctx context.Context, o Options) (*Log, error) {
	if o.Verifier == nil || o.Bucket == "" {
		return nil, errors.New("tesseraaws: a verifier and a bucket are required")
	}
	sdk, s3opts, err := s3Config(ctx, o)
	if err != nil {
		return nil, err
	}
	b := &bucket{client: s3.NewFromConfig(sdk, s3opts), name: o.Bucket, prefix: o.Prefix}
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	l := newLog(&Log{bucket: b}, o.Verifier)
	l.size = func(ctx context.Context) (uint64, error) {
		cp, err := l.Checkpoint(ctx)
		if errors.Is(err, ledger.ErrNotFound) {
			return 0, nil
		}
		return cp.Size, err
	}
	return l, nil
}

// s3Config builds the AWS SDK config and S3 options for o's endpoint and credentials.
func s3Config(ctx context.Context, o Options) (aws.Config, func(*s3.Options), error) {
	region := o.Region
	if region == "" {
		region = "us-east-1"
	}
	loads := []func(*config.LoadOptions) error{config.WithRegion(region)}
	switch {
	case o.AccessKeyID != "" && o.SecretAccessKey != "":
		loads = append(loads, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(o.AccessKeyID, o.SecretAccessKey, "")))
	case o.AccessKeyID != "" || o.SecretAccessKey != "":
		return aws.Config{}, nil, errors.New("tesseraaws: give both an S3 access key ID and a secret access key, or neither")
	}
	sdk, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("tesseraaws: AWS config: %w", err)
	}
	opts := func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// Checksums only when the operation requires one: S3-compatible servers differ in
		// which of the SDK's newer default checksum headers they accept.
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	return sdk, opts, nil
}

// Add implements ledger.Log.
func (l *Log) Add(ctx context.Context, entry []byte) ledger.IndexFuture {
	return l.write.Add(ctx, entry)
}

// Size implements ledger.Log: the number of entries durably sequenced in the database
// (SeqCoord), which runs ahead of the integrated tree until the integrator catches up.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	n, err := l.size(ctx)
	if err != nil {
		return 0, fmt.Errorf("tesseraaws: size: %w", err)
	}
	return n, nil
}

// Checkpoint implements ledger.Log. The checkpoint object is verified on every read.
func (l *Log) Checkpoint(ctx context.Context) (ledger.Checkpoint, error) {
	return l.read.Checkpoint(ctx)
}

// Entries implements ledger.Log.
func (l *Log) Entries(ctx context.Context, start, count, treeSize uint64) ([][]byte, error) {
	return l.read.Entries(ctx, start, count, treeSize)
}

// BundleEntries returns copies of the entries at offsets offs (ascending, below 256) of entry
// bundle `bundle`, all below treeSize: the query API's batch read (query/lineage_api.go).
func (l *Log) BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error) {
	return l.read.BundleEntries(ctx, bundle, offs, treeSize)
}

// InclusionProof implements ledger.Log, for any treeSize up to the integrated size.
func (l *Log) InclusionProof(ctx context.Context, index, treeSize uint64) ([][]byte, error) {
	return l.read.InclusionProof(ctx, index, treeSize)
}

// ConsistencyProof implements ledger.Log, for any from ≤ to ≤ the integrated size.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.read.ConsistencyProof(ctx, from, to)
}

// Close implements ledger.Log: it waits for added entries to be integrated and a checkpoint
// committing to them to be published, then stops the background work.
func (l *Log) Close(ctx context.Context) error {
	return l.write.Close(ctx)
}
