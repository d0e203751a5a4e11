package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/loadgen"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// TestEmbeddedNATSPublisherNKeys: only registered NKeys connect, each confined to its tenants.
func TestEmbeddedNATSPublisherNKeys(t *testing.T) {
	recs := demo.Generate(demo.Options{Seed: 41, Tenants: 2}, 20)
	a, b := recs[0].Tenant, ""
	for _, r := range recs {
		if r.Tenant != a {
			b = r.Tenant
		}
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "publishers")
	seedFile := filepath.Join(dir, "pub-a.nk")
	os.WriteFile(keysFile, []byte("# gateway of tenant a\n"+pub+" "+a+"\n"), 0o600)
	os.WriteFile(seedFile, seed, 0o600)
	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, filepath.Join(dir, "data"), natsAddr, httpAddr, "--nats-publisher-nkeys", keysFile)
	defer d.stop()

	if nc, err := nats.Connect("nats://" + natsAddr); err == nil {
		nc.Close()
		t.Fatal("connected to the embedded NATS without credentials")
	}
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	// A publisher NKey reads only its own inbox (ingest.PublisherInboxPrefix).
	nc, err := nats.Connect("nats://"+natsAddr, opt, nats.CustomInboxPrefix(ingest.PublisherInboxPrefix(pub)))
	if err != nil {
		t.Fatalf("registered publisher NKey: %v", err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n := 0
	for _, r := range recs {
		if r.Tenant != a {
			continue
		}
		if _, err := js.PublishMsg(ctx, ingest.RecordMsg(r.Tenant, r.ID, must(json.Marshal(r)))); err != nil {
			t.Fatalf("publish to own tenant: %v", err)
		}
		n++
	}
	for _, r := range recs {
		if r.Tenant == b {
			bctx, bcancel := context.WithTimeout(context.Background(), time.Second)
			_, err := js.PublishMsg(bctx, ingest.RecordMsg(r.Tenant, r.ID, must(json.Marshal(r))))
			bcancel()
			if err == nil {
				t.Fatal("a publisher of tenant a published to tenant b")
			}
			break
		}
	}
	// lineagectl signs in with the same seed file.
	if out, err := ctl("publish", "--nats-url", "nats://"+natsAddr, "--nats-nkey-seed", seedFile, "--file", writeNDJSON(t, recs, a)); err != nil {
		t.Fatalf("lineagectl publish with nkey: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(n))
}

// TestExternalNATSWithTLSAndPassword connects lineaged to an external NATS that requires TLS
// and a user/password, as in production.
func TestExternalNATSWithTLSAndPassword(t *testing.T) {
	dir := t.TempDir()
	caFile, serverTLS := makeTLS(t, dir)
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ns, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: filepath.Join(dir, "js"), NoSigs: true,
		TLSConfig: serverTLS, TLS: true, TLSVerify: false,
		Users: []*server.User{{Username: "lineaged", Password: "s3cret-lineaged"}, {Username: "gw", Password: "s3cret-gw"}}})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats not ready")
	}
	httpAddr := freeAddr(t)
	url := "tls://" + addr
	// The password comes from the environment, never the command line.
	os.Setenv("LINEAGE_NATS_PASSWORD", "s3cret-lineaged")
	d := startDaemon(t, filepath.Join(dir, "data"), freeAddr(t), httpAddr, "--nats-url", url, "--nats-user", "lineaged", "--nats-tls-ca", caFile)
	os.Unsetenv("LINEAGE_NATS_PASSWORD")
	defer d.stop()
	if strings.Contains(d.logs.String(), "s3cret") {
		t.Fatal("a NATS password appears in the logs")
	}
	recs := demo.Generate(demo.Options{Seed: 43}, 30)
	cmd := exec.Command(bins.lineagectl, "publish", "--nats-url", url, "--nats-user", "gw", "--nats-tls-ca", caFile, "--demo", "30", "--seed", "43", "--failure-modes=false")
	cmd.Env = append(os.Environ(), "LINEAGE_NATS_PASSWORD=s3cret-gw")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publish over TLS with a password: %v\n%s", err, out)
	}
	d.waitIndexed(t, uint64(len(recs)))
	// Without the CA the client refuses the server; without the password the server refuses it.
	if out, err := ctl("publish", "--nats-url", url, "--nats-user", "gw", "--nats-password", "s3cret-gw", "--demo", "1"); err == nil {
		t.Fatalf("TLS without the CA succeeded: %s", out)
	}
	if out, err := ctl("publish", "--nats-url", url, "--nats-tls-ca", caFile, "--demo", "1"); err == nil {
		t.Fatalf("publish without credentials succeeded: %s", out)
	}
}

func writeNDJSON(t *testing.T, recs []lineage.Record, tenant string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "recs.ndjson")
	var b []byte
	for _, r := range recs {
		if r.Tenant == tenant {
			b = append(append(b, must(json.Marshal(r))...), '\n')
		}
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// makeTLS writes a CA certificate and returns it with a server TLS config for 127.0.0.1.
func makeTLS(t *testing.T, dir string) (string, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lineage test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644)
	return caFile, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}, MinVersion: tls.VersionTLS12}
}

// TestEmbeddedNATSPublisherNKeysKeepStreamsAndCarryLoad: publisher NKeys put each publisher in
// a NATS account of its own (ingest/natsaccounts.go) while the streams stay in the account
// lineaged has always used, so switching a data directory from the default (no auth) to
// publisher NKeys keeps what the streams hold: here a quarantined message. The load tool
// (internal/loadgen, behind cmd/lineagebench) then publishes with an NKey registered for every
// tenant, as fast as JetStream acks through the accounts' service import, and every record is
// logged exactly once.
func TestEmbeddedNATSPublisherNKeysKeepStreamsAndCarryLoad(t *testing.T) {
	dir := t.TempDir()
	adminKey, keyFile := writeAdminKey(t, dir)
	data := filepath.Join(dir, "data")
	const tenant = "acme-bank"

	natsAddr, httpAddr := freeAddr(t), freeAddr(t)
	d := startDaemon(t, data, natsAddr, httpAddr, "--api-keys", keyFile)
	nc, err := nats.Connect("nats://" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(ingest.RecordsPrefix+tenant, []byte(`{"kept":"across the switch"}`)); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	var before int
	for deadline := time.Now().Add(10 * time.Second); before == 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		before = len(listQuarantine(t, d, adminKey, tenant))
	}
	d.stop()
	if before != 1 {
		t.Fatalf("quarantine of %s lists %d entries without auth, want 1", tenant, before)
	}

	kp, _ := nkeys.CreateUser()
	seedFile, pubFile := filepath.Join(dir, "bench.nk"), filepath.Join(dir, "publishers")
	os.WriteFile(seedFile, must(kp.Seed()), 0o600)
	os.WriteFile(pubFile, []byte(must(kp.PublicKey())+" *\n"), 0o600)
	natsAddr, httpAddr = freeAddr(t), freeAddr(t)
	d = startDaemon(t, data, natsAddr, httpAddr, "--api-keys", keyFile, "--nats-publisher-nkeys", pubFile)
	defer d.stop()
	if after := len(listQuarantine(t, d, adminKey, tenant)); after != before {
		t.Fatalf("quarantine of %s lists %d entries after switching to publisher NKeys, want %d", tenant, after, before)
	}
	const n = 2000
	res, err := loadgen.Run(context.Background(), loadgen.Options{NATSURL: "nats://" + natsAddr, NATS: natsclient.Settings{NKeySeed: seedFile},
		API: d.url(""), APIKey: adminKey, N: n, SampleEvery: 100, Seed: 61})
	if err != nil {
		t.Fatalf("load with a publisher NKey: %v", err)
	}
	t.Logf("through the publisher account: %s", res)
	d.waitIndexed(t, n)
}
