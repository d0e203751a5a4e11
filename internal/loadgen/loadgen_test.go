package loadgen

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and a ')' of its own: fields count from the last ')'.
	line := []byte("4242 (line aged) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 37 0 0 20 0 12 0 100 0 0\n")
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2870 * time.Millisecond; got != want {
		t.Fatalf("cpu = %s, want %s (utime 250 + stime 37 ticks)", got, want)
	}
	if _, err := parseStatCPU([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat line accepted")
	}
	if _, err := parseStatCPU([]byte("no parens")); err == nil {
		t.Fatal("stat line without a command name accepted")
	}
}

func TestProcessCPUSelf(t *testing.T) {
	if _, err := ProcessCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

func TestIndexedPerSecond(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	obs := []observation{
		{at(-5), 100}, {at(300), 150}, {at(900), 400}, // bucket 0: 300 applied
		// bucket 1: no sample
		{at(2100), 900}, {at(2500), 1000}, // bucket 2: 600
		{at(3000), 1000}, // bucket 3: 0
	}
	got := indexedPerSecond(obs, start, 100)
	want := []int{300, 0, 600, 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if indexedPerSecond(nil, start, 0) != nil {
		t.Fatal("no observations: want nil")
	}
}
