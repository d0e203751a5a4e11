package ingest_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var lineageStreams = []string{ingest.RecordsStream, ingest.QuarantineStream, ingest.FindingsStream}

// TestEnsureStreamsReplicas runs EnsureStreams against a real 3-node NATS cluster: an R1
// deployment's streams scale up to R3 in place, keeping their messages, and the ingester's
// durable consumer follows; a lower replica count than the streams have is refused, not
// applied; more replicas than the cluster has servers fail with an error that says so.
func TestEnsureStreamsReplicas(t *testing.T) {
	cl := testenv.StartNATSCluster(t, testenv.NATSClusterOptions{MaxPayload: 2 * maxMsg})
	nc, err := nats.Connect(cl.SeedURLs())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()

	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	for _, name := range lineageStreams {
		if r := replicasOf(ctx, t, js, name); r != 1 {
			t.Fatalf("stream %s: %d replicas, want 1", name, r)
		}
	}
	// The ingester's durable consumer, as ingest.Ingester creates it (replicas inherited).
	if _, err := js.CreateOrUpdateConsumer(ctx, ingest.RecordsStream, jetstream.ConsumerConfig{
		Durable: ingest.ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: ingest.RecordsSubjects,
	}); err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := js.Publish(ctx, "lineage.records.t1", fmt.Appendf(nil, `{"n":%d}`, i), jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}

	// Scale up: every stream R3 with its two followers current, the messages kept, the consumer R3.
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 3}); err != nil {
		t.Fatalf("scale up to 3 replicas: %v", err)
	}
	for _, name := range lineageStreams {
		waitFor(t, 30*time.Second, fmt.Sprintf("stream %s on 3 current replicas", name), func() bool {
			s, err := js.Stream(ctx, name)
			if err != nil {
				return false
			}
			info := s.CachedInfo()
			return info.Config.Replicas == 3 && info.Cluster != nil && info.Cluster.Leader != "" && currentPeers(info.Cluster.Replicas) == 2
		})
	}
	s, err := js.Stream(ctx, ingest.RecordsStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().State.Msgs; got != n {
		t.Fatalf("records stream holds %d messages after scaling up, want %d", got, n)
	}
	waitFor(t, 30*time.Second, "the ingester's consumer on 3 replicas", func() bool {
		c, err := js.Consumer(ctx, ingest.RecordsStream, ingest.ConsumerName)
		if err != nil {
			return false
		}
		info := c.CachedInfo()
		return info.Cluster != nil && info.Cluster.Leader != "" && currentPeers(info.Cluster.Replicas) == 2 && info.NumPending == n
	})
	// The same call again changes nothing.
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 3}); err != nil {
		t.Fatalf("EnsureStreams at 3 replicas again: %v", err)
	}

	// Scaling down is refused (a node started with the default must not remove redundancy).
	for _, r := range []int{0, 1, 2} {
		err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: r})
		if err == nil || !strings.Contains(err.Error(), "refusing to scale it down") {
			t.Fatalf("EnsureStreams with %d replicas over R3 streams: %v, want a refusal", r, err)
		}
	}
	for _, name := range lineageStreams {
		if r := replicasOf(ctx, t, js, name); r != 3 {
			t.Fatalf("stream %s: %d replicas after the refused scale-down, want 3", name, r)
		}
	}

	// Out of range, and more replicas than servers.
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 6}); err == nil || !strings.Contains(err.Error(), "between 1 and 5") {
		t.Fatalf("6 replicas: %v", err)
	}
	if err := ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 5}); err == nil || !strings.Contains(err.Error(), "at least 5 JetStream servers") {
		t.Fatalf("5 replicas on 3 servers: %v", err)
	}
}

// TestEnsureStreamsReplicasSingleServer: replicas on a server that is not in a cluster fail
// with an error naming the cause, and create nothing.
func TestEnsureStreamsReplicasSingleServer(t *testing.T) {
	ns, err := ingest.StartEmbedded(ingest.EmbeddedOptions{Addr: "127.0.0.1:0", StoreDir: filepath.Join(t.TempDir(), "nats"), MaxPayload: 2 * maxMsg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	err = ingest.EnsureStreams(ctx, js, ingest.StreamOptions{MaxMsgSize: maxMsg, Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "need a NATS cluster with at least 3 JetStream servers") {
		t.Fatalf("3 replicas on one server: %v", err)
	}
	if _, err := js.Stream(ctx, ingest.RecordsStream); err == nil {
		t.Fatal("the records stream was created anyway")
	}
}

func replicasOf(ctx context.Context, t *testing.T, js jetstream.JetStream, name string) int {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().Config.Replicas
}

func currentPeers(peers []*jetstream.PeerInfo) int {
	n := 0
	for _, p := range peers {
		if p.Current && !p.Offline {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached after %s: %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
