package tesseraaws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/lineage-audit/lineage/ledger/internal/tesseralog"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// bucket reads the log's objects.
type bucket struct {
	client *s3.Client
	name   string
	prefix string
}

func (b *bucket) key(p string) string {
	if b.prefix == "" {
		return p
	}
	return path.Join(b.prefix, p)
}

// check fails unless the bucket exists and answers.
func (b *bucket) check(ctx context.Context) error {
	if _, err := b.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(b.name)}); err != nil {
		return fmt.Errorf("tesseraaws: bucket %s: %w", b.name, err)
	}
	return nil
}

// get reads object p (relative to the prefix). A missing object is fs.ErrNotExist.
func (b *bucket) get(ctx context.Context, p string) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.name), Key: aws.String(b.key(p))})
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("%s: %w", p, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("get %s: %w", p, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return raw, nil
}

// isNotFound reports whether err is S3's answer for a missing object.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound")
}

// partialWidths lists the widths above p of the partial versions of the resource whose full
// version is at full ("…/N.p/W" objects), narrowest first.
func (b *bucket) partialWidths(ctx context.Context, full string, p uint8) ([]uint8, error) {
	dir := b.key(full) + ".p/"
	var out []uint8
	pg := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: aws.String(b.name), Prefix: aws.String(dir)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", dir, err)
		}
		for _, o := range page.Contents {
			w, err := strconv.ParseUint(strings.TrimPrefix(aws.ToString(o.Key), dir), 10, 8)
			if err != nil || uint8(w) <= p {
				continue
			}
			out = append(out, uint8(w))
		}
	}
	slices.Sort(out)
	return out, nil
}

// newLog sets l's read side: the shared reads of ledger/internal/tesseralog on l.bucket. They
// cut a missing partial of a tree size older than the latest from a wider version: it may never
// have been written (the log grew past it inside one batch) or may have been garbage-collected.
// Tessera's AWS reader is not used: it does not map a missing object to fs.ErrNotExist.
func newLog(l *Log, v note.Verifier) *Log {
	l.read = &tesseralog.Reader{
		Name:     "tesseraaws",
		Verifier: v,
		ReadCheckpoint: func(ctx context.Context) ([]byte, error) {
			return l.bucket.get(ctx, layout.CheckpointPath)
		},
		ReadTile: func(ctx context.Context, level, index uint64, w uint8) ([]byte, error) {
			return l.bucket.get(ctx, layout.TilePath(level, index, w))
		},
		ReadEntryBundle: func(ctx context.Context, index uint64, w uint8) ([]byte, error) {
			return l.bucket.get(ctx, layout.EntriesPath(index, w))
		},
		Partials: l.bucket.partialWidths,
	}
	return l
}

// ReadTile returns the hash tile (level, index) as it is in a tree whose partial width for that
// tile is p (0: a full tile): the raw concatenated hashes of its bottom row. A missing partial
// is cut from a wider version: the query API's proof builder (query/proofs.go) uses it.
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return l.read.Tile(ctx, level, index, p)
}
