package exporters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/nats-io/nats.go/jetstream"
)

// Exports and erasure (docs/ERASURE.md). An export of an erasure-on log holds the clear values
// of sealed fields: the report shows them and the bundle carries their openings. The files the
// service keeps (under Dir, or in the object store in cluster mode) are copies of personal data
// the erasure must reach. Each job therefore records the subject key ids of which its files hold
// clear values (Job.ClearKeyIDs; key ids are pseudonyms, not personal data), and PurgeKeys,
// called after a subject's keys are destroyed, deletes the files of every job that names one of
// them. The job entry stays, with FilesErased set; its downloads answer 410 Gone.
//
// Bundles already downloaded are the recipients' responsibility (docs/ERASURE.md, threat
// model): they stay verifiable, which is the point of a self-contained bundle.

// PurgeKeys deletes the stored files of every export of tenant whose files hold a clear value
// under one of keyIDs (the key ids an erasure destroyed, as seal.KeyID.String spells them), in
// local and cluster mode, and marks each such job FilesErased. Jobs still queued or running are
// covered too: a run that read a key before its erasure checks the key store once it has
// finished (purgeIfErased). It returns the number of exports whose files were deleted; an
// export purged earlier is not counted again. Call it after the keys are destroyed; it is
// idempotent, so an erasure completed after a crash may call it again.
func (s *Service) PurgeKeys(ctx context.Context, tenant string, keyIDs []string) (int, error) {
	if len(keyIDs) == 0 {
		return 0, nil
	}
	erased := make(map[string]bool, len(keyIDs))
	for _, k := range keyIDs {
		erased[k] = true
	}
	if s.cl != nil {
		return s.purgeCluster(ctx, tenant, erased)
	}
	s.mu.Lock()
	var hit []*Job
	for _, j := range s.jobs {
		if j.Tenant == tenant && j.FilesErased == "" && holdsKey(j.ClearKeyIDs, erased) {
			hit = append(hit, j)
		}
	}
	s.mu.Unlock()
	n := 0
	var errs []error
	for _, j := range hit {
		purged, err := s.purgeLocal(j)
		if err != nil {
			errs = append(errs, err)
		}
		if purged {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func holdsKey(clear []string, erased map[string]bool) bool {
	return slices.ContainsFunc(clear, func(k string) bool { return erased[k] })
}

// purgeLocal deletes every file of a local export but job.json and marks the job FilesErased;
// false if it was already marked.
func (s *Service) purgeLocal(j *Job) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock() // held throughout: a finishing run must not save the job in between
	if j.FilesErased != "" {
		return false, nil
	}
	dir := filepath.Join(s.c.Dir, j.ID)
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("exporters: purge export %s: %w", j.ID, err)
	}
	for _, e := range ents {
		if e.Name() == "job.json" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return false, fmt.Errorf("exporters: purge export %s: %w", j.ID, err)
		}
	}
	j.FilesErased = report.FormatTime(s.c.now())
	snapshot := *j
	if snapshot.Status == StatusSucceeded || snapshot.Status == StatusFailed {
		// A queued or running job's status is saved when it finishes.
		if err := s.saveJob(&snapshot); err != nil {
			return true, fmt.Errorf("exporters: purge export %s: saving job status: %w", j.ID, err)
		}
	}
	s.log.Info("export files deleted after an erasure", "export", j.ID, "tenant", j.Tenant)
	return true, nil
}

// purgeCluster is PurgeKeys in cluster mode: the jobs are in the jobs bucket, the files in the
// object store.
func (s *Service) purgeCluster(ctx context.Context, tenant string, erased map[string]bool) (int, error) {
	w, err := s.cl.jobs.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("%w: listing exports: %w", errUnavailable, err)
	}
	var ids []string
	for e := range w.Updates() {
		if e == nil {
			break // the bucket's current values have all been delivered
		}
		var sj storedJob
		if json.Unmarshal(e.Value(), &sj) == nil && sj.Tenant == tenant && sj.FilesErased == "" && holdsKey(sj.ClearKeyIDs, erased) {
			ids = append(ids, sj.ID)
		}
	}
	w.Stop()
	n := 0
	var errs []error
	for _, id := range ids {
		purged, err := s.purgeClusterJob(ctx, id)
		if err != nil {
			errs = append(errs, err)
		}
		if purged {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// purgeClusterJob marks one job FilesErased (compare-and-set, retried when another node wrote
// it meanwhile) and then deletes its files from the object store. The mark comes first: from
// then on no node serves the files, and a finishing run that rewrites the job keeps the mark.
func (s *Service) purgeClusterJob(ctx context.Context, id string) (bool, error) {
	for attempt := 0; ; attempt++ {
		sj, rev, ok, err := s.getStored(ctx, id)
		if err != nil {
			return false, err
		}
		if !ok || sj.FilesErased != "" {
			return false, nil
		}
		sj.FilesErased = report.FormatTime(s.c.now())
		b, err := json.Marshal(sj)
		if err != nil {
			return false, err
		}
		_, err = s.cl.jobs.Update(ctx, id, b, rev)
		if (errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists)) && attempt < 20 {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("%w: marking export %s erased: %w", errUnavailable, id, err)
		}
		if err := s.deleteClusterFiles(ctx, id); err != nil {
			return true, err
		}
		s.log.Info("export files deleted after an erasure", "export", id, "tenant", sj.Tenant)
		return true, nil
	}
}

// deleteClusterFiles deletes every object <id>/… of the files bucket.
func (s *Service) deleteClusterFiles(ctx context.Context, id string) error {
	objs, err := s.cl.files.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: listing the files of export %s: %w", errUnavailable, id, err)
	}
	var errs []error
	for _, o := range objs {
		if len(o.Name) > len(id) && o.Name[:len(id)+1] == id+"/" {
			if err := s.cl.files.Delete(ctx, o.Name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
				errs = append(errs, fmt.Errorf("exporters: purge export %s: %s: %w", id, o.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// erasedSince returns the key ids of keyIDs that the key store now reports erased: a run that
// opened a subject's fields before the subject's erasure, and finished after the eraser's
// PurgeKeys looked at the jobs, must not keep them. A key-store failure is returned, never
// taken for "not erased".
func (s *Service) erasedSince(ctx context.Context, tenant string, keyIDs []string) ([]string, error) {
	if s.exp.Keys == nil {
		return nil, nil
	}
	var out []string
	for _, k := range keyIDs {
		kid, err := seal.ParseKeyID(k)
		if err != nil {
			return nil, err
		}
		key, err := s.exp.Keys.Open(ctx, tenant, kid)
		switch {
		case errors.Is(err, seal.ErrErased):
			out = append(out, k)
		case err != nil:
			return nil, fmt.Errorf("exporters: checking the export's subject keys: %w", err)
		default:
			clear(key[:])
		}
	}
	return out, nil
}
