package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// With LINEAGE_TEST_S3=seaweedfs (`make test-seaweedfs`), the S3-compatible object store of the
// tests of ledger/tesseraaws is SeaweedFS's `weed server` (master, volume server, filer and S3
// gateway in one process) instead of gofakes3 (s3.go). SeaweedFS is not a
// dependency of Lineage (it is not in go.mod): weed is built from this pinned version with its
// own go.mod. `go install module/weed@version` refuses the module (its go.mod has replace
// directives), so the module is downloaded and built inside its module-cache directory, where
// its go.mod is the main module's.
const (
	seaweedModule  = "github.com/seaweedfs/seaweedfs"
	seaweedVersion = "v0.0.0-20261109003541-7506e5f91cd6"
)

// startSeaweedFS builds weed (once per machine: about 20 minutes cold on two cores), starts a
// private SeaweedFS with a data directory in the test's temp dir and one S3 identity, and waits
// until its S3 gateway listens. Every port is a free loopback port; telemetry is off (the tests
// reach no other address). The process is stopped when the test ends.
func startSeaweedFS(t testing.TB) *S3Server {
	t.Helper()
	bin := weedBinary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	keyID, secret := s3KeyID, s3Secret
	identities := fmt.Sprintf(`{"identities":[{"name":"lineage","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, keyID, secret)
	s3conf := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(s3conf, []byte(identities), 0o600); err != nil {
		t.Fatal(err)
	}
	port := func() string { return strconv.Itoa(freePort(t)) }
	s3Port := port()
	args := []string{
		"server",
		"-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-dir=" + data,
		"-master.port=" + port(), "-master.port.grpc=" + port(),
		"-master.telemetry=false",
		"-master.volumeSizeLimitMB=32",
		"-volume.port=" + port(), "-volume.port.grpc=" + port(),
		"-volume.max=64",
		"-filer", "-filer.port=" + port(), "-filer.port.grpc=" + port(),
		"-s3", "-s3.config=" + s3conf, "-s3.port=" + s3Port, "-s3.port.grpc=" + port(),
		"-s3.port.iceberg=0", "-s3.port.lance=0",
	}
	p, err := startProc("weed", filepath.Join(dir, "weed.log"), bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	s := &S3Server{Kind: "seaweedfs", Endpoint: "http://127.0.0.1:" + s3Port, Region: "us-east-1", KeyID: keyID, Secret: secret, proc: p, dir: dir}
	s.await(t, s3Port)
	return s
}

// weedBinary returns weed built from seaweedVersion, building it into the cache on first use.
func weedBinary(t testing.TB) string {
	t.Helper()
	return cachedBinary(t, "seaweedfs-"+seaweedVersion, "weed", seaweedModule+" "+seaweedVersion+" weed (once per machine; takes several minutes)", func(bin string) {
		tmp := filepath.Dir(bin)
		dl := goCmd("mod", "download", "-json", seaweedModule+"@"+seaweedVersion)
		dl.Dir = tmp // outside any module
		dl.Env = append(os.Environ(), "GOWORK=off")
		out, err := dl.Output()
		if err != nil {
			t.Fatalf("testenv: download %s %s: %v%s", seaweedModule, seaweedVersion, err, stderrOf(err))
		}
		var m moduleInfo
		if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
			t.Fatalf("testenv: download %s %s: no module directory in %s (%v)", seaweedModule, seaweedVersion, out, err)
		}
		build := goCmd("build", "-o", bin, "./weed")
		build.Dir = m.Dir // the module is the main module: its replace directives apply
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-trimpath -mod=readonly", "GOWORK=off")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("testenv: build %s %s weed: %v\n%s", seaweedModule, seaweedVersion, err, out)
		}
	})
}
