package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// The inbox prefixes are a wire contract with publishers (README.md, "Publishing records"), so
// the test spells them out instead of using the constants in ingest/natsserver.go.
const (
	publisherInbox = "_INBOX_"         // + the publisher's public NKey
	serviceInbox   = "_LINEAGED_INBOX" // every connection lineaged makes
)

// natsSpy is a NATS connection that subscribes to every pattern it can and records what the
// server refuses and what it delivers.
type natsSpy struct {
	nc      *nats.Conn
	mu      sync.Mutex
	refused map[string]bool
	got     map[string][]*nats.Msg // by subscribed pattern
}

func newNATSSpy(t *testing.T, url string, creds ...nats.Option) *natsSpy {
	t.Helper()
	s := &natsSpy{refused: map[string]bool{}, got: map[string][]*nats.Msg{}}
	opts := append(creds, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		msg := err.Error()
		if !strings.Contains(strings.ToLower(msg), "permissions violation for subscription") {
			return
		}
		if i, j := strings.IndexByte(msg, '"'), strings.LastIndexByte(msg, '"'); i >= 0 && j > i {
			s.refused[msg[i+1:j]] = true
		}
	}))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("spy connect: %v", err)
	}
	s.nc = nc
	return s
}

func (s *natsSpy) subscribe(t *testing.T, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if _, err := s.nc.Subscribe(p, func(m *nats.Msg) {
			s.mu.Lock()
			s.got[p] = append(s.got[p], m)
			s.mu.Unlock()
		}); err != nil {
			t.Fatalf("subscribe %q: %v", p, err)
		}
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the async error handler reports refusals
}

// writeAdminKey writes an API key file into dir holding one admin key for every tenant
// (--api-keys) and returns the key and the file.
func writeAdminKey(t *testing.T, dir string) (key, file string) {
	t.Helper()
	key, entry, err := auth.NewKey("admin", []auth.Role{auth.RoleAdmin}, []string{"*"})
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(dir, "apikeys.json")
	if err := os.WriteFile(file, must(json.Marshal(auth.KeyFile{Keys: []auth.KeyEntry{entry}})), 0o600); err != nil {
		t.Fatal(err)
	}
	return key, file
}

// startNKeyDaemon starts lineaged with an admin API key (writeAdminKey) and a publisher NKey
// for each of tenants (--nats-publisher-nkeys), and returns it with its NATS URL, the admin
// key, and by tenant the public NKey and the file holding its seed. The caller stops it.
func startNKeyDaemon(t *testing.T, tenants ...string) (d *daemon, url, adminKey string, pubs, seeds map[string]string) {
	t.Helper()
	dir := t.TempDir()
	adminKey, keyFile := writeAdminKey(t, dir)
	pubs, seeds = map[string]string{}, map[string]string{}
	var nkeyLines string
	for _, tenant := range tenants {
		kp, _ := nkeys.CreateUser()
		pubs[tenant] = must(kp.PublicKey())
		seeds[tenant] = filepath.Join(dir, tenant+".nk")
		if err := os.WriteFile(seeds[tenant], must(kp.Seed()), 0o600); err != nil {
			t.Fatal(err)
		}
		nkeyLines += pubs[tenant] + " " + tenant + "\n"
	}
	pubFile := filepath.Join(dir, "publishers")
	if err := os.WriteFile(pubFile, []byte(nkeyLines), 0o600); err != nil {
		t.Fatal(err)
	}
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d = startDaemon(t, filepath.Join(dir, "data"), natsAddr, httpAddr, "--api-keys", keyFile, "--nats-publisher-nkeys", pubFile)
	return d, "nats://" + natsAddr, adminKey, pubs, seeds
}

// connectWithSeed connects to NATS with the settings lineagectl and lineaged use
// (internal/natsclient), signing in with the NKey seed in seedFile: the connection then uses
// the publisher's private inbox.
func connectWithSeed(t *testing.T, url, seedFile string) *nats.Conn {
	t.Helper()
	creds, err := natsclient.Settings{NKeySeed: seedFile}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, creds...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestNATSPublisherReadsNothingButItsAcks: a publisher NKey confined to tenant a subscribes to
// every pattern it might be allowed while tenant b publishes (and lineaged ingests) records and
// an admin lists b's quarantine over HTTP. It must receive nothing of b nor of lineaged, and
// still get its own PubAcks on its private inbox _INBOX_<its public key>.
func TestNATSPublisherReadsNothingButItsAcks(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 51, Tenants: 2}, 300)
	a := recs[0].Tenant
	b := otherTenant(recs, a)
	d, url, adminKey, pubs, seeds := startNKeyDaemon(t, a, b)
	defer d.stop()

	// Tenant a's spy: its own NKey, on its private inbox prefix.
	aOpt := must(nats.NkeyOptionFromSeed(seeds[a]))
	ownInbox := publisherInbox + pubs[a]
	spy := newNATSSpy(t, url, aOpt, nats.CustomInboxPrefix(ownInbox))
	defer spy.nc.Close()
	patterns := []string{">", "*", "*.>", "_INBOX.>", "_INBOX_*.>", "_INBOX_*", ownInbox + ".>",
		publisherInbox + pubs[b] + ".>", serviceInbox + ".>", "$JS.>", "$JS.ACK.>", "$JS.API.>",
		"$JS.ACK." + ingest.RecordsStream + ".>", "$SYS.>", "_R_.>", "lineage.>", ingest.RecordsSubjects,
		ingest.RecordsPrefix + b, ingest.QuarantineSubject, ingest.QuarantinePrefix + b}
	spy.subscribe(t, patterns...)

	// Tenant b publishes records with lineagectl (which picks its private inbox from the seed)
	// and three invalid messages with a bare NATS publish: they land in b's quarantine.
	nB := 0
	for _, r := range recs {
		if r.Tenant == b {
			nB++
		}
	}
	if out, err := ctl("publish", "--nats-url", url, "--nats-nkey-seed", seeds[b], "--file", writeNDJSON(t, recs, b)); err != nil {
		t.Fatalf("tenant %s publishes with lineagectl: %v\n%s", b, err, out)
	}
	bnc, err := nats.Connect(url, must(nats.NkeyOptionFromSeed(seeds[b])))
	if err != nil {
		t.Fatal(err)
	}
	defer bnc.Close()
	for i := range 3 {
		if err := bnc.Publish(ingest.RecordsPrefix+b, []byte(fmt.Sprintf(`{"secret_of_%s":%d}`, b, i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := bnc.Flush(); err != nil {
		t.Fatal(err)
	}
	d.waitIndexed(t, uint64(nB))

	// An admin lists b's quarantine: lineaged reads it from JetStream on its own inbox.
	var listed int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		listed = len(listQuarantine(t, d, adminKey, b))
		if listed >= 3 {
			break
		}
	}
	if listed != 3 {
		t.Fatalf("quarantine of %s lists %d entries, want 3", b, listed)
	}

	// Tenant a publishes its own records through natsclient (lineagectl's and lineaged's
	// settings), which uses its private inbox because it signs in with an NKey seed; every
	// publish gets its PubAck.
	anc := connectWithSeed(t, url, seeds[a])
	defer anc.Close()
	js, err := jetstream.New(anc)
	if err != nil {
		t.Fatal(err)
	}
	nA, acked := 0, 0
	for _, r := range recs {
		if r.Tenant != a {
			continue
		}
		nA++
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, err := js.PublishMsg(ctx, ingest.RecordMsg(r.Tenant, r.ID, must(json.Marshal(r)))); err == nil {
			acked++
		} else if acked == 0 && nA == 1 {
			t.Errorf("tenant %s publishing its own record: %v", a, err)
		}
		cancel()
	}
	if acked != nA {
		t.Errorf("tenant %s got %d PubAcks for %d records", a, acked, nA)
	} else {
		d.waitIndexed(t, uint64(nB+nA))
	}
	time.Sleep(300 * time.Millisecond) // let the last deliveries reach the spy

	spy.mu.Lock()
	defer spy.mu.Unlock()
	leaked, ofB, ownAcks := 0, 0, 0
	var report []string
	for _, p := range patterns {
		msgs := spy.got[p]
		state := "accepted"
		if spy.refused[p] {
			state = "refused"
		}
		foreign := 0
		for _, m := range msgs {
			if isOwnAck(m, ownInbox, b) {
				ownAcks++
				continue
			}
			foreign++
			if bytes.Contains(m.Data, []byte(b)) {
				ofB++
			}
			if foreign <= 2 {
				t.Logf("leak on %q: subject %s reply %s data %.120s", p, m.Subject, m.Reply, m.Data)
			}
		}
		leaked += foreign
		report = append(report, fmt.Sprintf("%s %s: %d foreign, %d own acks", p, state, foreign, len(msgs)-foreign))
	}
	sort.Strings(report)
	t.Logf("tenant %s's subscriptions while %s published %d records and %d quarantined messages were listed:\n%s",
		a, b, nB, listed, strings.Join(report, "\n"))
	if leaked != 0 {
		t.Errorf("the publisher of %s received %d messages of %s or of lineaged (%d of them carry %s's records or quarantined messages)", a, leaked, b, ofB, b)
	}
	for _, p := range []string{">", "_INBOX.>", serviceInbox + ".>", publisherInbox + pubs[b] + ".>", "$JS.>", "lineage.>", ingest.QuarantinePrefix + b} {
		if !spy.refused[p] {
			t.Errorf("the publisher of %s may subscribe to %q", a, p)
		}
	}
	if spy.refused[ownInbox+".>"] || ownAcks < nA {
		t.Errorf("the publisher of %s saw %d of its %d PubAcks on its private inbox %s.> (refused: %v)", a, ownAcks, nA, ownInbox, spy.refused[ownInbox+".>"])
	}
}

// isOwnAck says whether m is a JetStream PubAck on the publisher's own inbox that says nothing
// of tenant other.
func isOwnAck(m *nats.Msg, ownInbox, other string) bool {
	if !strings.HasPrefix(m.Subject, ownInbox+".") || bytes.Contains(m.Data, []byte(other)) || m.Header != nil {
		return false
	}
	var ack struct {
		Stream string `json:"stream"`
		Seq    uint64 `json:"seq"`
	}
	return json.Unmarshal(m.Data, &ack) == nil && ack.Stream == ingest.RecordsStream && ack.Seq > 0
}

func listQuarantine(t *testing.T, d *daemon, key, tenant string) []ingest.QuarantineEntry {
	t.Helper()
	req, _ := http.NewRequest("GET", d.url("/v1/quarantine?tenant="+tenant), nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/quarantine?tenant=%s: %s %s", tenant, resp.Status, body)
	}
	var out struct {
		Entries []ingest.QuarantineEntry `json:"entries"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Entries
}

// TestEmbeddedNATSTokenWarns: a shared --nats-token gives every holder full NATS rights (the
// nats-server library cannot attach permissions to a token), so lineaged says so at start and
// points to publisher NKeys, without logging the token.
func TestEmbeddedNATSTokenWarns(t *testing.T) {
	const token = "tok-3f9a1c-shared"
	t.Setenv("LINEAGE_NATS_TOKEN", token)
	dir := t.TempDir()
	d := startDaemon(t, filepath.Join(dir, "data"), freeAddr(t), freeAddr(t))
	logs := d.logs.String()
	d.stop()
	var warned bool
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "--nats-token") && strings.Contains(line, "--nats-publisher-nkeys") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about the shared NATS token at start:\n%s", logs)
	}
	if strings.Contains(logs, token) {
		t.Error("the NATS token appears in the logs")
	}
}

// TestNATSPublisherCannotAimReplies: JetStream sends its PubAck to whatever reply subject the
// publisher names. A publisher NKey of tenant a publishes valid records of a with reply
// subjects in lineaged's own subject space (b's and a's quarantine and records, the JetStream
// API: delete, purge, lineaged's inbox) and in b's publisher's private inbox. None of those
// PubAcks may land anywhere: b's quarantine stays empty, a's keeps exactly the entries
// lineaged put there, b's publisher receives nothing, every record is logged exactly once,
// both streams survive, and ordinary publishes still get their PubAcks, duplicates flagged
// (the Nats-Msg-Id header crosses to the stream; ingest/natsaccounts.go).
func TestNATSPublisherCannotAimReplies(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 57, Tenants: 2}, 80)
	a := recs[0].Tenant
	b := otherTenant(recs, a)
	var ofA []lineage.Record
	for _, r := range recs {
		if r.Tenant == a {
			ofA = append(ofA, r)
		}
	}
	d, url, adminKey, pubs, seeds := startNKeyDaemon(t, a, b)
	defer d.stop()

	nc := connectWithSeed(t, url, seeds[a])
	defer nc.Close()
	// quarantineOf lists a tenant's quarantine once it holds at least want entries (or after 3 s).
	quarantineOf := func(tenant string, want int) []ingest.QuarantineEntry {
		var q []ingest.QuarantineEntry
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if q = listQuarantine(t, d, adminKey, tenant); len(q) >= want {
				break
			}
		}
		return q
	}
	// One invalid message of a: lineaged quarantines it (with a reason), before the attack.
	if err := nc.Publish(ingest.RecordsPrefix+a, []byte(`{"not":"a record"}`)); err != nil {
		t.Fatal(err)
	}
	if q := quarantineOf(a, 1); len(q) != 1 {
		t.Fatalf("quarantine of %s lists %d entries before the attack, want 1", a, len(q))
	}

	// b's publisher listens on its private inbox, as its PubAcks arrive there.
	bCreds, err := natsclient.Settings{NKeySeed: seeds[b]}.Options()
	if err != nil {
		t.Fatal(err)
	}
	bnc, err := nats.Connect(url, bCreds...)
	if err != nil {
		t.Fatal(err)
	}
	defer bnc.Close()
	bInbox, err := bnc.SubscribeSync(publisherInbox + pubs[b] + ".>")
	if err != nil {
		t.Fatal(err)
	}
	if err := bnc.Flush(); err != nil {
		t.Fatal(err)
	}

	// The attack: each publish is a valid record of a, published where a may publish, with an
	// aimed reply subject.
	targets := []string{
		ingest.QuarantinePrefix + b, ingest.QuarantinePrefix + b, ingest.QuarantinePrefix + b,
		ingest.QuarantinePrefix + a,
		ingest.RecordsPrefix + b, ingest.RecordsPrefix + a,
		"$JS.API.STREAM.DELETE." + ingest.QuarantineStream,
		"$JS.API.STREAM.PURGE." + ingest.QuarantineStream,
		"$JS.API.STREAM.DELETE." + ingest.RecordsStream,
		"$JS.API.CONSUMER.DELETE." + ingest.RecordsStream + "." + ingest.ConsumerName,
		serviceInbox + ".aimed",
		publisherInbox + pubs[b] + ".aimed",
	}
	if len(ofA) < len(targets)+6 {
		t.Fatalf("only %d records of %s", len(ofA), a)
	}
	for i, target := range targets {
		m := ingest.RecordMsg(a, ofA[i].ID, must(json.Marshal(ofA[i])))
		m.Reply = target
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	d.waitIndexed(t, uint64(len(targets)))

	// Ordinary publishes still get their PubAcks; a retry within the dedupe window is flagged.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rest := ofA[len(targets) : len(targets)+6]
	dup := false
	for _, r := range rest {
		for range 2 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ack, err := js.PublishMsg(ctx, ingest.RecordMsg(a, r.ID, must(json.Marshal(r))))
			cancel()
			if err != nil {
				t.Fatalf("tenant %s publishing record %s: %v", a, r.ID, err)
			}
			if ack.Stream != ingest.RecordsStream {
				t.Fatalf("PubAck from stream %q", ack.Stream)
			}
			dup = dup || ack.Duplicate
		}
	}
	if !dup {
		t.Error("no retry within the dedupe window was acked as a duplicate (Nats-Msg-Id lost?)")
	}
	nA := len(targets) + len(rest)
	d.waitIndexed(t, uint64(nA))

	// Every record of a is logged, exactly once (waitIndexed fails on more entries).
	for _, r := range ofA[:nA] {
		req, _ := http.NewRequest("GET", d.url("/v1/records/"+r.ID+"?tenant="+a), nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("record %s of %s: %s", r.ID, a, resp.Status)
		}
	}

	// A second invalid message of a: the quarantine stream still exists and kept the first.
	if err := nc.Publish(ingest.RecordsPrefix+a, []byte(`{"still":"not a record"}`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // let any aimed PubAck settle
	qa, qb := quarantineOf(a, 2), listQuarantine(t, d, adminKey, b)
	foreign := func(q []ingest.QuarantineEntry) (n int) {
		for _, e := range q {
			if e.Reason.Code == "" { // lineaged writes every entry with its reason
				n++
				if n <= 2 {
					t.Logf("entry not written by lineaged: payload %.120s", e.Payload)
				}
			}
		}
		return n
	}
	fa, fb := foreign(qa), foreign(qb)
	var toB int
	for {
		if _, err := bInbox.NextMsg(100 * time.Millisecond); err != nil {
			break
		}
		toB++
	}
	t.Logf("after %d aimed replies: quarantine of %s lists %d entries (%d not written by lineaged), of %s %d (%d not written by lineaged); %s's publisher received %d messages",
		len(targets), b, len(qb), fb, a, len(qa), fa, b, toB)
	if len(qb) != 0 {
		t.Errorf("quarantine of %s lists %d entries, want 0: tenant %s's PubAcks were aimed into it", b, len(qb), a)
	}
	if len(qa) != 2 || fa != 0 {
		t.Errorf("quarantine of %s lists %d entries (%d not written by lineaged), want lineaged's 2", a, len(qa), fa)
	}
	if toB != 0 {
		t.Errorf("the publisher of %s received %d PubAcks of %s's records on its private inbox", b, toB, a)
	}
}
