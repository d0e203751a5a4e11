package service

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/prometheus/client_golang/prometheus"
)

// Scheduled retention (issue #17, item 5; docs/ERASURE.md, "Retention"): a tenant's retention
// window erases, on schedule, every subject not seen for longer than the window. The records
// stay in the log; their personal fields become unreadable, exactly as after an erasure on
// request, and each run's erasures are recorded as decision records.

// DefaultRetentionInterval is how often the retention job runs unless configured.
const DefaultRetentionInterval = time.Hour

// retentionBatch is the most subject keys one erasure record names (and one purge handles):
// the record's policy context lists them, and a record is bounded (lineage.MaxRecordSize).
const retentionBatch = 256

// erasureSourceID is the source of erasure records (erasureRecord, erasure.go).
const erasureSourceID = "lineage-erasure"

// RetentionSubject is the principal retention erasures are recorded under.
const RetentionSubject = "lineage-retention"

// window is tenant's retention window: its own retention_days, else the global
// --erasure-retention-days; 0 means no scheduled erasure.
func (e *erasureState) window(tenant string) time.Duration {
	if d, ok := e.windows[tenant]; ok {
		return d
	}
	return e.globalWindow
}

// checkWindows refuses a retention window shorter than the tenant's minimum retention: the
// job would erase what the AI Act requires to be kept (Art. 19(1), 26(6)).
func (e *erasureState) checkWindows() error {
	for t, w := range e.windows {
		if w < e.minRetention(t) {
			return fmt.Errorf("service: --erasure-config: tenant %s: retention_days %d is shorter than its minimum retention of %d days", t, days(w), days(e.minRetention(t)))
		}
	}
	if e.globalWindow == 0 {
		return nil
	}
	if e.globalWindow < DefaultMinRetention {
		return fmt.Errorf("service: --erasure-retention-days %d is shorter than the default minimum retention of %d days", days(e.globalWindow), days(DefaultMinRetention))
	}
	for t, m := range e.retention {
		if _, own := e.windows[t]; !own && e.globalWindow < m {
			return fmt.Errorf("service: --erasure-retention-days %d is shorter than tenant %s's minimum retention of %d days (give the tenant its own retention_days)", days(e.globalWindow), t, days(m))
		}
	}
	return nil
}

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }

// retentionMetrics count the retention job's work.
type retentionMetrics struct {
	erased      prometheus.Counter
	failures    prometheus.Counter
	lastSuccess prometheus.Gauge
}

func newRetentionMetrics(reg prometheus.Registerer) *retentionMetrics {
	m := &retentionMetrics{
		erased:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_erasure_retention_keys_erased_total", Help: "Subject keys the retention job destroyed (subjects not seen for longer than their tenant's retention window)."}),
		failures:    prometheus.NewCounter(prometheus.CounterOpts{Name: "lineage_erasure_retention_failures_total", Help: "Runs of the retention job that failed (retried at the next run)."}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lineage_erasure_retention_last_success_timestamp_seconds", Help: "Unix time of the retention job's last complete run."}),
	}
	if reg != nil {
		reg.MustRegister(m.erased, m.failures, m.lastSuccess)
	}
	return m
}

// runMaintenance is the erasure's background job, every interval until ctx ends: publish the
// erasure records a failure left pending, then the retention pass. A failed run is logged,
// counted and retried at the next one; it never stops lineaged.
func (er *eraser) runMaintenance(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultRetentionInterval
	}
	t := time.NewTimer(min(interval, 10*time.Second)) // the first run soon after start
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		er.mu.Lock()
		err := er.pending.flush(ctx)
		er.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			er.logger.Error("erasure: publish pending erasure records (retried)", "err", err)
		}
		// An erasure record indexed after a restore of the key store (the index was restored
		// too, and is catching up) is re-applied here.
		if _, err := er.reapplyErasures(ctx); err != nil && ctx.Err() == nil {
			er.metrics.failures.Inc()
			er.logger.Error("erasure: re-apply the log's erasures (retried)", "err", err)
		}
		n, err := er.retentionPass(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			er.metrics.failures.Inc()
			er.logger.Error("erasure: retention run failed (retried at the next run)", "err", err, "keys_erased", n)
		default:
			er.metrics.lastSuccess.Set(float64(er.now().Unix()))
		}
		t.Reset(interval)
	}
}

// retentionPass erases, in every tenant with a retention window, the subjects whose keys have
// not sealed a record since the window began. It returns the keys destroyed.
//
// The key store knows when each key last sealed a record to the hour (its last_seen is
// written at most hourly), so the floor is one hour earlier than the window asks: a subject
// is erased only when it certainly has no record ingested inside the window.
func (er *eraser) retentionPass(ctx context.Context) (int, error) {
	tenants, err := er.retentionTenants(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for _, tenant := range tenants {
		w := er.e.window(tenant)
		if w <= 0 {
			continue
		}
		floor := er.now().Add(-w - time.Hour)
		basis := fmt.Sprintf("storage limitation (GDPR Art. 5(1)(e)): no record of the subject for %d days, the tenant's retention window", days(w))
		for {
			kids, rec, resume, err := er.destroyLogged(ctx, tenant, RetentionSubject, basis, false,
				func() ([]seal.KeyID, error) {
					idle, err := er.e.keys.IdleKeys(ctx, tenant, floor)
					if err != nil || len(idle) == 0 {
						return nil, err
					}
					return idle[:min(len(idle), retentionBatch)], nil
				},
				func(kids []seal.KeyID) ([]seal.KeyID, error) { return er.e.keys.EraseKeys(ctx, tenant, kids, basis) })
			if err != nil {
				return total, fmt.Errorf("retention: tenant %s: %w", tenant, err)
			}
			if len(kids) == 0 {
				break
			}
			total += len(kids)
			er.metrics.erased.Add(float64(len(kids)))
			id, n, err := er.finishErasure(ctx, tenant, kids, rec)
			resume()
			if err != nil {
				return total, fmt.Errorf("retention: tenant %s: %w", tenant, err)
			}
			er.logger.Info("erasure: retention erased subjects", "tenant", tenant, "keys", len(kids), "window_days", days(w), "records_purged", n, "record", id)
		}
	}
	return total, nil
}

// retentionTenants lists the tenants that have a retention window.
func (er *eraser) retentionTenants(ctx context.Context) ([]string, error) {
	var ts []string
	if er.e.globalWindow > 0 {
		var err error
		if ts, err = er.e.keys.Tenants(ctx); err != nil {
			return nil, err
		}
	}
	for t, w := range er.e.windows {
		if w > 0 && !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts, nil
}

// destroyKeys runs destroy (which erases keys in the key store) while ingest hands nothing
// over, and pauses the indexer and the findings worker before ingest resumes: between the key
// deletion and the purge, nothing may index or hold a clear value of those keys again. When
// keys were destroyed, the caller runs the purge and then resume.
func (er *eraser) destroyKeys(ctx context.Context, destroy func() ([]seal.KeyID, error)) ([]seal.KeyID, func(), error) {
	er.e.sealer.Lock()
	kids, err := destroy()
	if err != nil || len(kids) == 0 {
		er.e.sealer.Unlock()
		return nil, func() {}, err
	}
	resume := er.pause()
	er.e.sealer.Unlock()
	return kids, resume, nil
}

// destroyLogged destroys keys with their erasure record written ahead, so that no crash can
// leave keys destroyed and their erasure unrecorded. Under er.mu (which flush also takes) and
// the sealer lock: plan names the keys, the record naming them is written to the pending
// directory (synced), destroy destroys them, and the record is rewritten for the keys destroy
// actually destroyed (removed if none). A crash after the destruction leaves the record
// pending, published at the next start; a crash before it leaves a record whose keys still
// exist, which flush drops (the erasure did not happen; its caller got no answer). When keys
// were destroyed the caller publishes rec (finishErasure) and then calls resume.
func (er *eraser) destroyLogged(ctx context.Context, tenant, by, basis string, withinRetention bool,
	plan func() ([]seal.KeyID, error), destroy func([]seal.KeyID) ([]seal.KeyID, error)) ([]seal.KeyID, lineage.Record, func(), error) {
	er.mu.Lock()
	defer er.mu.Unlock()
	var rec lineage.Record
	kids, resume, err := er.destroyKeys(ctx, func() ([]seal.KeyID, error) {
		planned, err := plan()
		if err != nil || len(planned) == 0 {
			return nil, err
		}
		if rec, err = er.erasureRecordFor(ctx, tenant, by, planned, basis, withinRetention); err != nil {
			return nil, err
		}
		path, err := er.pending.write(rec)
		if err != nil {
			return nil, err
		}
		done, err := destroy(planned)
		if err != nil || len(done) == 0 {
			// Nothing was destroyed (the key store's transaction is all or nothing).
			return nil, errors.Join(err, removeSynced(path))
		}
		if len(done) != len(planned) {
			// Some were gone already (an erasure in between): the record names what this one
			// destroyed. Written before the old one is removed: a crash leaves one or both.
			if rec, err = er.erasureRecordFor(ctx, tenant, by, done, basis, withinRetention); err != nil {
				return done, fmt.Errorf("erasure: keys destroyed, their record not rewritten: %w", err)
			}
			newPath, err := er.pending.write(rec)
			if err != nil {
				return done, fmt.Errorf("erasure: keys destroyed, their record not rewritten: %w", err)
			}
			if newPath != path {
				if err := removeSynced(path); err != nil {
					return done, err
				}
			}
		}
		return done, nil
	})
	return kids, rec, resume, err
}

// erasureRecordFor is the erasure record of kids, with its tag.
func (er *eraser) erasureRecordFor(ctx context.Context, tenant, by string, kids []seal.KeyID, basis string, withinRetention bool) (lineage.Record, error) {
	kids = slices.SortedFunc(slices.Values(kids), func(a, b seal.KeyID) int { return bytes.Compare(a[:], b[:]) })
	tag, err := er.e.keys.ErasureTag(ctx, tenant, kids)
	if err != nil {
		return lineage.Record{}, err
	}
	return erasureRecord(tenant, by, kids, basis, withinRetention, er.now(), tag)
}

// recordedKeysGone is pendingRecords.check: whether every key a pending erasure record names
// is gone from the key store, i.e. the erasure it was written ahead of happened.
func (er *eraser) recordedKeysGone(ctx context.Context, rec lineage.Record) (bool, error) {
	var pc erasureContext
	if err := json.Unmarshal(rec.PolicyContext, &pc); err != nil || len(pc.KeyIDs) == 0 {
		return false, fmt.Errorf("erasure record %s: policy context: %v", rec.ID, err)
	}
	for _, id := range pc.KeyIDs {
		kid, err := seal.ParseKeyID(id)
		if err != nil {
			return false, fmt.Errorf("erasure record %s: %w", rec.ID, err)
		}
		has, err := er.e.keys.HasKey(ctx, rec.Tenant, kid)
		if err != nil || has {
			return false, err
		}
	}
	return true, nil
}

// finishErasure is what follows the destruction of kids: the publication of their erasure
// record rec (written ahead by destroyLogged, kept in the pending directory until JetStream
// acks it) and the purge of the index, the streams and the stored exports. It returns the
// record's id and the rows purged.
func (er *eraser) finishErasure(ctx context.Context, tenant string, kids []seal.KeyID, rec lineage.Record) (string, int, error) {
	if err := er.pending.deliver(ctx, rec); err != nil {
		// The key is gone and stays gone; the record is published by the next maintenance run
		// or start, and the purge runs regardless (and again at start if it fails).
		er.logger.Error("erasure: publish the erasure record (kept pending, retried)", "tenant", tenant, "record", rec.ID, "err", err)
	}
	n, err := purgeKeys(ctx, er.log, er.index, query.Decoder{Keys: er.e.keys}, tenant, kids, er.scrub)
	if err != nil {
		return rec.ID, 0, fmt.Errorf("erasure: keys destroyed, index purge failed (it is retried at the next start): %w", err)
	}
	if err := er.purgeExports(ctx, tenant, kids); err != nil {
		return rec.ID, n, fmt.Errorf("erasure: keys destroyed, index purged, stored exports not purged (retried at the next start): %w", err)
	}
	return rec.ID, n, nil
}

// pendingRecords publishes erasure records durably: each is written to dir before its first
// attempt and removed once JetStream acks it, so a record whose publication failed (NATS down,
// a crash) is published by the next maintenance run or start. Publishing is idempotent: the
// record id is deterministic and ingest deduplicates by id, so a record published twice is
// logged once.
type pendingRecords struct {
	dir  string
	send func(ctx context.Context, rec lineage.Record) error
	// check reports whether the erasure a pending record was written ahead of happened
	// (eraser.recordedKeysGone); nil: always.
	check   func(ctx context.Context, rec lineage.Record) (bool, error)
	logger  *slog.Logger
	backoff []time.Duration // between attempts of publish
}

// erasurePendingDir holds the erasure records not yet acknowledged by JetStream.
func erasurePendingDir(dataDir string) string { return filepath.Join(dataDir, "erasure-pending") }

// write keeps rec in the pending directory (synced) and returns its path.
func (p *pendingRecords) write(rec lineage.Record) (string, error) {
	b, err := rec.Canonical()
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, rec.ID+".json")
	if err := writeSynced(path, b); err != nil {
		return "", fmt.Errorf("erasure: keep the record pending: %w", err)
	}
	return path, nil
}

// publish writes rec to the pending directory and delivers it.
func (p *pendingRecords) publish(ctx context.Context, rec lineage.Record) error {
	if _, err := p.write(rec); err != nil {
		return err
	}
	return p.deliver(ctx, rec)
}

// deliver tries a few times to publish rec, kept pending by write, and removes it once acked.
func (p *pendingRecords) deliver(ctx context.Context, rec lineage.Record) error {
	path := filepath.Join(p.dir, rec.ID+".json")
	for i := 0; ; i++ {
		err := p.send(ctx, rec)
		if err == nil {
			return removeSynced(path)
		}
		if i >= len(p.backoff) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(p.backoff[i]):
		}
	}
}

// flush publishes every pending record, removing each once acked. A record whose erasure did
// not happen (check says its keys still exist: a stop came between the record and the keys'
// destruction) is removed unpublished, and so are temporary files a stop left. Callers hold
// eraser.mu, so no erasure is between its record and its destruction meanwhile.
func (p *pendingRecords) flush(ctx context.Context) error {
	des, err := os.ReadDir(p.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, de := range des {
		if de.Type().IsRegular() && strings.HasSuffix(de.Name(), ".json.tmp") {
			errs = append(errs, removeSynced(filepath.Join(p.dir, de.Name())))
			continue
		}
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		path := filepath.Join(p.dir, de.Name())
		b, err := ledger.ReadFileLimit(path, lineage.MaxRecordSize)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rec, err := lineage.DecodeRecord(b)
		if err != nil {
			// Written by publish from a valid record: a damaged file is reported, never dropped.
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if p.check != nil {
			happened, err := p.check(ctx, *rec)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", rec.ID, err))
				continue
			}
			if !happened {
				if err := removeSynced(path); err != nil {
					errs = append(errs, err)
					continue
				}
				p.logger.Warn("erasure: dropped a pending erasure record whose keys were never destroyed (a stop cut the erasure short before it began; ask again)", "record", rec.ID)
				continue
			}
		}
		if err := p.send(ctx, *rec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.ID, err))
			continue
		}
		if err := removeSynced(path); err != nil {
			errs = append(errs, err)
			continue
		}
		p.logger.Info("erasure: published a pending erasure record", "record", rec.ID)
	}
	return errors.Join(errs...)
}

// writeSynced writes b to path (created 0600 with its directory) and syncs the file and the
// directory, so it survives a crash right after.
func writeSynced(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return werr
	}
	return syncDir(filepath.Dir(path))
}

func removeSynced(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// reapplyErasures destroys again every key an erasure recorded in the log destroyed but the
// key store still holds: the store was restored from a backup older than the erasure. The
// log is the durable list of erasures; a record counts only if it is Lineage's own (source
// lineage-erasure) and its tag verifies with this store's pepper (ErasureTag), so a record
// published by anyone else cannot make lineaged destroy keys. The purge follows as for any
// erasure. It returns the keys destroyed again.
func (er *eraser) reapplyErasures(ctx context.Context) (int, error) {
	tenants, err := er.e.keys.Tenants(ctx)
	if err != nil {
		return 0, err
	}
	const page = 500
	total := 0
	for _, tenant := range tenants {
		var after *index.Cursor
		for {
			rows, err := er.index.Records(ctx, index.Query{Tenant: tenant, PolicyID: ErasurePolicy.ID, After: after, Limit: page})
			if err != nil {
				return total, fmt.Errorf("re-apply erasures: %w", err)
			}
			for i := range rows {
				n, err := er.reapply(ctx, tenant, &rows[i].Record)
				total += n
				if err != nil {
					return total, err
				}
			}
			if len(rows) < page {
				break
			}
			last := rows[len(rows)-1]
			t, err := last.Record.ParsedTime()
			if err != nil {
				return total, fmt.Errorf("re-apply erasures: record %s: %w", last.Record.ID, err)
			}
			after = &index.Cursor{TimeNS: t.UnixNano(), Index: last.Index}
		}
	}
	return total, nil
}

// reapply re-applies one erasure record (see reapplyErasures).
func (er *eraser) reapply(ctx context.Context, tenant string, rec *lineage.Record) (int, error) {
	if rec.Source.ID != erasureSourceID || rec.Source.Type != "lineage" || rec.Decision.Policy != ErasurePolicy {
		return 0, nil
	}
	var pc erasureContext
	if err := json.Unmarshal(rec.PolicyContext, &pc); err != nil || len(pc.Tag) == 0 || len(pc.KeyIDs) == 0 {
		return 0, nil // not one of ours (or written before erasure records carried a tag)
	}
	kids := make([]seal.KeyID, 0, len(pc.KeyIDs))
	for _, s := range pc.KeyIDs {
		kid, err := seal.ParseKeyID(s)
		if err != nil {
			return 0, nil
		}
		kids = append(kids, kid)
	}
	tag, err := er.e.keys.ErasureTag(ctx, tenant, kids)
	if err != nil {
		return 0, err
	}
	if !hmac.Equal(tag, pc.Tag) {
		er.logger.Warn("erasure: an erasure record's tag does not verify with this key store; not re-applied", "tenant", tenant, "record", rec.ID)
		return 0, nil
	}
	var live []seal.KeyID
	for _, kid := range kids {
		ok, err := er.e.keys.HasKey(ctx, tenant, kid)
		if err != nil {
			return 0, err
		}
		if ok {
			live = append(live, kid)
		}
	}
	if len(live) == 0 {
		return 0, nil
	}
	basis := "re-applied after a key-store restore: erasure record " + rec.ID
	kids, resume, err := er.destroyKeys(ctx, func() ([]seal.KeyID, error) { return er.e.keys.EraseKeys(ctx, tenant, live, basis) })
	if err != nil || len(kids) == 0 {
		return 0, err
	}
	defer resume()
	n, err := purgeKeys(ctx, er.log, er.index, query.Decoder{Keys: er.e.keys}, tenant, kids, er.scrub)
	if err != nil {
		return len(kids), fmt.Errorf("re-apply erasure %s: keys destroyed, index purge failed (retried at the next start): %w", rec.ID, err)
	}
	if err := er.purgeExports(ctx, tenant, kids); err != nil {
		return len(kids), fmt.Errorf("re-apply erasure %s: stored exports not purged: %w", rec.ID, err)
	}
	er.logger.Warn("erasure: re-applied an erasure the key store had lost (restored from an older backup?)", "tenant", tenant, "record", rec.ID, "keys", len(kids), "records_purged", n)
	return len(kids), nil
}

// purgeExports deletes the stored files of the tenant's exports that hold a clear value under
// one of kids (exporters.Service.PurgeKeys).
func (er *eraser) purgeExports(ctx context.Context, tenant string, kids []seal.KeyID) error {
	if er.exports == nil || len(kids) == 0 {
		return nil
	}
	ids := make([]string, len(kids))
	for i, k := range kids {
		ids[i] = k.String()
	}
	n, err := er.exports.PurgeKeys(ctx, tenant, ids)
	if n > 0 {
		er.logger.Info("erasure: deleted the stored files of exports holding erased values", "tenant", tenant, "exports", n)
	}
	return err
}

// purgeAllExports runs purgeExports for every tombstone of the key store: at start, it
// completes the export purge of an erasure a crash cut short (PurgeKeys is idempotent).
func (er *eraser) purgeAllExports(ctx context.Context) error {
	tombs, err := er.e.keys.Tombstones(ctx)
	if err != nil {
		return err
	}
	byTenant := map[string][]seal.KeyID{}
	for _, t := range tombs {
		byTenant[t.Tenant] = append(byTenant[t.Tenant], t.KeyID)
	}
	for tenant, kids := range byTenant {
		if err := er.purgeExports(ctx, tenant, kids); err != nil {
			return fmt.Errorf("tenant %s: %w", tenant, err)
		}
	}
	return nil
}
