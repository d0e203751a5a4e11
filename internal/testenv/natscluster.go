package testenv

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// NATSClusterOptions shapes StartNATSCluster's cluster.
type NATSClusterOptions struct {
	// Nodes is the number of servers (default 3).
	Nodes int
	// MaxPayload is each server's largest message (0: the server's default, 1 MiB).
	MaxPayload int32
	// Name is the cluster's name (default "lineage-test").
	Name string
}

// NATSCluster is a NATS cluster of JetStream servers run in the test process with the
// nats-server library, on loopback: each node has its own client port, route port and store
// directory, and routes to every other node. Nodes stop and start one by one on the same ports
// and store, as a restarted server would; clients given every node's URL (SeedURLs) fail over.
type NATSCluster struct {
	t     testing.TB
	name  string
	dir   string
	maxPl int32

	mu    sync.Mutex
	nodes []*natsNode
}

type natsNode struct {
	name        string
	clientPort  int
	clusterPort int
	storeDir    string
	srv         *server.Server // nil while stopped
}

// StartNATSCluster starts the cluster, waits until JetStream has a meta leader that every node
// follows, and stops it with the test.
func StartNATSCluster(t testing.TB, o NATSClusterOptions) *NATSCluster {
	t.Helper()
	if o.Nodes == 0 {
		o.Nodes = 3
	}
	if o.Name == "" {
		o.Name = "lineage-test"
	}
	c := &NATSCluster{t: t, name: o.Name, dir: t.TempDir(), maxPl: o.MaxPayload}
	for i := range o.Nodes {
		c.nodes = append(c.nodes, &natsNode{
			name:        fmt.Sprintf("n%d", i+1),
			clientPort:  freePort(t),
			clusterPort: freePort(t),
			storeDir:    filepath.Join(c.dir, fmt.Sprintf("n%d", i+1)),
		})
	}
	t.Cleanup(c.shutdown)
	// Start every node before waiting for any: a lone JetStream node cannot elect a meta leader.
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.WaitReady(60 * time.Second)
	return c
}

func (c *NATSCluster) options(i int) *server.Options {
	n := c.nodes[i]
	var routes []string
	for j, m := range c.nodes {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", m.clusterPort))
		}
	}
	return &server.Options{
		ServerName: n.name,
		Host:       "127.0.0.1",
		Port:       n.clientPort,
		MaxPayload: c.maxPl,
		JetStream:  true,
		StoreDir:   n.storeDir,
		NoSigs:     true,
		Cluster: server.ClusterOpts{
			Name: c.name,
			Host: "127.0.0.1",
			Port: n.clusterPort,
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
	}
}

// start starts node i (on its ports and store) and waits until it accepts clients.
func (c *NATSCluster) start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.srv != nil {
		return fmt.Errorf("testenv: nats node %s is already running", n.name)
	}
	s, err := server.NewServer(c.options(i))
	if err != nil {
		return fmt.Errorf("testenv: nats node %s: %w", n.name, err)
	}
	s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return fmt.Errorf("testenv: nats node %s not ready for connections after 20s", n.name)
	}
	n.srv = s
	return nil
}

// Len is the number of nodes.
func (c *NATSCluster) Len() int { return len(c.nodes) }

// Name is node i's server name ("n1", "n2", …), as JetStream reports stream leaders.
func (c *NATSCluster) Name(i int) string { return c.nodes[i].name }

// URL is node i's client URL (nats://127.0.0.1:<port>), valid across restarts.
func (c *NATSCluster) URL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.nodes[i].clientPort)
}

// SeedURLs is every node's client URL, comma-separated, as nats.Connect and lineaged's
// --nats-url take them.
func (c *NATSCluster) SeedURLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.URL(i)
	}
	return strings.Join(urls, ",")
}

// Server is node i's running server, nil while it is stopped.
func (c *NATSCluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// Stop shuts node i down (its clients are disconnected; Raft groups it led elect a new leader
// among the others) and waits until it is down. Its store is kept for Start.
func (c *NATSCluster) Stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("testenv: nats node %s is not running", c.nodes[i].name)
	}
	s.Shutdown()
	s.WaitForShutdown()
}

// Start restarts a stopped node i on its ports and store, and waits until it follows the
// JetStream meta leader again.
func (c *NATSCluster) Start(i int) {
	c.t.Helper()
	if err := c.start(i); err != nil {
		c.t.Fatal(err)
	}
	c.WaitReady(60 * time.Second)
}

// WaitReady waits until one running node is the JetStream meta leader and every running node
// is current with it.
func (c *NATSCluster) WaitReady(timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		leader, current, running := 0, 0, 0
		c.mu.Lock()
		for _, n := range c.nodes {
			if n.srv == nil {
				continue
			}
			running++
			if n.srv.JetStreamIsLeader() {
				leader++
			}
			if n.srv.JetStreamIsCurrent() {
				current++
			}
		}
		c.mu.Unlock()
		if leader == 1 && current == running {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testenv: nats cluster not ready after %s: %d meta leaders, %d of %d running nodes current", timeout, leader, current, running)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// StreamLeader returns the index of the running node leading stream (in the global account,
// the one clients without accounts use), or -1 if none does at the moment.
func (c *NATSCluster) StreamLeader(stream string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// ConsumerLeader returns the index of the running node leading the stream's consumer, or -1.
func (c *NATSCluster) ConsumerLeader(stream, consumer string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv != nil && n.srv.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer) {
			return i
		}
	}
	return -1
}

// ClientNode returns the index of the running node a client connection named name (its
// nats.Name) is connected to, or -1 if none is.
func (c *NATSCluster) ClientNode(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, n := range c.nodes {
		if n.srv == nil {
			continue
		}
		cz, err := n.srv.Connz(&server.ConnzOptions{Limit: 1 << 16})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return i
			}
		}
	}
	return -1
}

// WaitStreamLeader waits until a running node leads stream and returns its index.
func (c *NATSCluster) WaitStreamLeader(stream string, timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if i := c.StreamLeader(stream); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testenv: no leader for stream %s after %s", stream, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *NATSCluster) shutdown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.srv != nil {
			n.srv.Shutdown()
			n.srv.WaitForShutdown()
			n.srv = nil
		}
	}
}
