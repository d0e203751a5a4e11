package lineage

import (
	"os"
	"testing"
	"time"
)

// benchRecord is a typical record of about 1 KB: an executor's deny with delegation and identity.
func benchRecord(b *testing.B) []byte {
	data, err := os.ReadFile("testdata/records/executor-deny.json")
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkDecodeRecord(b *testing.B) {
	for _, name := range []string{"executor-deny", "planner-delegated"} {
		b.Run(name, func(b *testing.B) {
			data, err := os.ReadFile("testdata/records/" + name + ".json")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := DecodeRecord(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCanonical(b *testing.B) {
	r, err := DecodeRecord(benchRecord(b))
	if err != nil {
		b.Fatal(err)
	}
	c, _ := r.Canonical()
	b.ReportAllocs()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		if _, err := r.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalize(b *testing.B) {
	data := benchRecord(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Canonicalize(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewEnvelope(b *testing.B) {
	c := canonicalOf(b, benchRecord(b))
	at := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		NewEnvelope(c, at, false)
	}
}

// BenchmarkIngestPath is what ingest does per message: decode, canonicalize, wrap.
func BenchmarkIngestPath(b *testing.B) {
	data := benchRecord(b)
	at := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := DecodeRecord(data)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.Canonical()
		if err != nil {
			b.Fatal(err)
		}
		NewEnvelope(c, at, false)
	}
}

func BenchmarkDecodeEnvelope(b *testing.B) {
	entry := NewEnvelope(canonicalOf(b, benchRecord(b)), time.Now(), true)
	b.ReportAllocs()
	b.SetBytes(int64(len(entry)))
	for b.Loop() {
		if _, err := DecodeEnvelope(entry); err != nil {
			b.Fatal(err)
		}
	}
}
