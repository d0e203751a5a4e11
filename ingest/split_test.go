package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// An NDJSON body larger than any scanner buffer splits into exactly its lines, each intact (a
// bufio.Scanner's slices were overwritten by later lines once the body passed 64 KiB).
func TestSplitRecordsLargeNDJSON(t *testing.T) {
	var body bytes.Buffer
	var want []string
	for i := range 2000 {
		line := fmt.Sprintf(`{"id":"rec-%05d","pad":"%s"}`, i, strings.Repeat(string(rune('a'+i%26)), 100+i%50))
		want = append(want, line)
		body.WriteString(line)
		if i%3 == 0 {
			body.WriteString("\r\n  \n") // CRLF and blank lines are skipped
		} else {
			body.WriteByte('\n')
		}
	}
	body.WriteString(`{"id":"last-without-newline"}`)
	want = append(want, `{"id":"last-without-newline"}`)
	if body.Len() < 256<<10 {
		t.Fatalf("body of %d bytes is too small for the test", body.Len())
	}
	got, err := splitRecords(body.Bytes(), 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Fatalf("record %d = %.60q, want %.60q", i, got[i], want[i])
		}
	}
	if _, err := splitRecords(body.Bytes(), 100); err == nil {
		t.Fatal("more records than the limit were accepted")
	}
}
