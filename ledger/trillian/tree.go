package trillian

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/google/trillian"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// TreeOptions describes a tree made by CreateTree. The zero value is usable.
type TreeOptions struct {
	// DisplayName and Description are shown by Trillian's admin tools.
	DisplayName string
	Description string
	// MaxRootDuration makes the signer write a fresh root this often even when no leaves
	// arrive, which shows monitors the signer is alive. Default one hour (as createtree); a
	// negative value disables it.
	MaxRootDuration time.Duration
	// TLS, Insecure and DialOptions are as in Options.
	TLS         *tls.Config
	Insecure    bool
	DialOptions []grpc.DialOption
}

// CreateTree creates and initialises a PREORDERED_LOG tree for Lineage through the Trillian admin
// API of the log server at adminAddr (trillian_log_server serves the admin and log APIs on one
// port) and returns its id, to be passed as Options.TreeID (`lineagectl trillian create-tree`).
// The tree uses Trillian's defaults for everything Lineage relies on: RFC 6962 SHA-256 hashing
// and the log root format v1. It waits until the tree's first (empty) root is readable.
func CreateTree(ctx context.Context, adminAddr string, o TreeOptions) (int64, error) {
	conn, err := dial(adminAddr, o.TLS, o.Insecure, o.DialOptions)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if o.DisplayName == "" {
		o.DisplayName = "lineage"
	}
	if o.Description == "" {
		o.Description = "Lineage audit ledger (PREORDERED_LOG; checkpoints signed by Lineage)"
	}
	// Trillian rejects a missing duration; zero is its "never".
	maxRoot := durationpb.New(max(o.MaxRootDuration, 0))
	if o.MaxRootDuration == 0 {
		maxRoot = durationpb.New(time.Hour)
	}
	tree, err := trillian.NewTrillianAdminClient(conn).CreateTree(ctx, &trillian.CreateTreeRequest{Tree: &trillian.Tree{
		TreeState:       trillian.TreeState_ACTIVE,
		TreeType:        trillian.TreeType_PREORDERED_LOG,
		DisplayName:     o.DisplayName,
		Description:     o.Description,
		MaxRootDuration: maxRoot,
	}})
	if err != nil {
		return 0, fmt.Errorf("trillian: create tree at %s: %w", adminAddr, err)
	}
	id := tree.GetTreeId()
	logc := trillian.NewTrillianLogClient(conn)
	if err := retry(ctx, func() error {
		_, err := logc.InitLog(ctx, &trillian.InitLogRequest{LogId: id})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	}); err != nil {
		return 0, fmt.Errorf("trillian: init tree %d: %w", id, err)
	}
	// Trillian caches trees for a moment; wait until the new root is served.
	if err := retry(ctx, func() error {
		_, err := logc.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: id})
		return err
	}); err != nil {
		return 0, fmt.Errorf("trillian: tree %d root: %w", id, err)
	}
	return id, nil
}

// retry calls f until it succeeds, fails with an error other than "not yet" (the tree not yet
// visible, or the server unreachable), or ctx ends.
func retry(ctx context.Context, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		switch status.Code(err) {
		case codes.OK:
			return nil
		case codes.NotFound, codes.FailedPrecondition, codes.Unavailable:
		default:
			return err
		}
		if serr := sleepCtx(ctx, backoff(attempt)); serr != nil {
			return errors.Join(err, serr)
		}
	}
}
