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
	"github.com/transparency-dev/tessera/api/layout"
)

const (
	// checkpointPath is the C2SP tlog-tiles checkpoint object.
	checkpointPath = layout.CheckpointPath
	// entryBundleWidth is the number of entries in a full entry bundle.
	entryBundleWidth = 256
	// hashSize is the size of one hash in a tile (SHA-256, RFC 6962).
	hashSize = 32
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

// ReadTile returns the hash tile (level, index) as it is in a tree whose partial width for that
// tile is p (0: a full tile): the raw concatenated hashes of its bottom row. A missing partial
// is cut from a wider version: the query API's proof builder (query/proofs.go) uses it.
func (l *Log) ReadTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	return l.readTile(ctx, level, index, p)
}

// readTile is the client.TileFetcherFunc of the proof builders. As in ledger/tessera/tiles.go,
// the partial of a tree size older than the latest may never have been written (the log grew
// past it inside one batch) or may have been garbage-collected; the first p hashes of any wider
// version are the same, because a tile's bottom row only ever grows.
func (l *Log) readTile(ctx context.Context, level, index uint64, p uint8) ([]byte, error) {
	raw, err := l.readWider(ctx, p, layout.TilePath(level, index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return l.bucket.get(ctx, layout.TilePath(level, index, w))
	})
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return raw, nil
	}
	if len(raw) < int(p)*hashSize {
		return nil, fmt.Errorf("tile %s holds %d bytes, fewer than %d hashes", layout.TilePath(level, index, p), len(raw), p)
	}
	return raw[:int(p)*hashSize], nil
}

// readEntryBundle is the client.EntryBundleFetcherFunc of Entries; a wider bundle is returned
// as it is (Entries reads no further than it needs).
func (l *Log) readEntryBundle(ctx context.Context, index uint64, p uint8) ([]byte, error) {
	return l.readWider(ctx, p, layout.EntriesPath(index, 0), func(ctx context.Context, w uint8) ([]byte, error) {
		return l.bucket.get(ctx, layout.EntriesPath(index, w))
	})
}

// readWider reads the resource whose full version is at full at width p: the partial, else the
// full version, else the narrowest wider partial. Garbage collection may delete partials while
// they are listed (the resource became full), so it looks again a few times.
func (l *Log) readWider(ctx context.Context, p uint8, full string, read func(context.Context, uint8) ([]byte, error)) ([]byte, error) {
	raw, err := read(ctx, p)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return raw, err
	}
	if p == 0 {
		return nil, fmt.Errorf("%s: %w", full, err)
	}
	for range 3 {
		if raw, err = read(ctx, 0); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return raw, err
		}
		widths, lerr := l.bucket.partialWidths(ctx, full, p)
		if lerr != nil {
			return nil, fmt.Errorf("%w; list wider partials: %w", err, lerr)
		}
		for _, w := range widths {
			raw, werr := read(ctx, w)
			if werr == nil {
				return raw, nil
			}
			if !errors.Is(werr, fs.ErrNotExist) {
				return nil, werr
			}
		}
	}
	return nil, fmt.Errorf("%s at width %d: %w", full, p, err)
}
