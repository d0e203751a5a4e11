package service

import (
	"strings"
	"testing"
)

func TestStreamReplicasChecked(t *testing.T) {
	for _, tc := range []struct {
		replicas int
		url      string
		wantErr  string
	}{
		{0, "", ""},
		{1, "", ""},
		{1, "nats://a:4222", ""},
		{3, "nats://a:4222,nats://b:4222,nats://c:4222", ""},
		{5, "nats://a:4222", ""},
		{3, "", "embedded NATS server is a single node"},
		{2, "", "--stream-replicas 2 needs a NATS cluster"},
		{6, "nats://a:4222", "between 1 and 5"},
		{-1, "nats://a:4222", "between 1 and 5"},
	} {
		err := checkStreamReplicas(Config{StreamReplicas: tc.replicas, NATSURL: tc.url})
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("replicas %d, url %q: %v", tc.replicas, tc.url, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("replicas %d, url %q: error %v, want %q", tc.replicas, tc.url, err, tc.wantErr)
		}
	}
	// connectNATS refuses before starting the embedded server.
	if _, _, _, err := connectNATS(Config{StreamReplicas: 3, DataDir: t.TempDir(), NATSAddr: "127.0.0.1:0"}, nil); err == nil ||
		!strings.Contains(err.Error(), "single node") {
		t.Fatalf("connectNATS with 3 replicas and the embedded server: %v", err)
	}
}

func TestRedactURLSeeds(t *testing.T) {
	got := redactURL("nats://alice:pw1@a:4222,nats://tok2@b:4222,nats://c:4222")
	if want := "nats://alice:xxxxx@a:4222,nats://xxxxx@b:4222,nats://c:4222"; got != want {
		t.Fatalf("redactURL = %q, want %q", got, want)
	}
	// A bad seed list fails with the URL redacted.
	_, _, _, err := connectNATS(Config{NATSURL: "nats://alice:pw1@a:4222,http://tok2@b:4222"}, nil)
	if err == nil || strings.Contains(err.Error(), "pw1") || strings.Contains(err.Error(), "tok2") || !strings.Contains(err.Error(), "--nats-url") {
		t.Fatalf("connectNATS with a bad seed: %v", err)
	}
}
