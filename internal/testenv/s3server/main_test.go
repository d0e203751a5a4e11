package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
)

// Readers of an object that writers keep replacing (with other objects written beside it, so
// bbolt reuses pages) get one whole version each time, never a mix: what a checkpoint read
// needs. gofakes3's bolt backend alone fails this (copyingBackend says why).
func TestReadsAreWholeUnderWrites(t *testing.T) {
	backend, err := s3bolt.NewFile(filepath.Join(t.TempDir(), "s3.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := backend.CreateBucket("b"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(&copyingBackend{Backend: backend}, gofakes3.WithoutVersioning()).Server())
	defer srv.Close()
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 150+i%7*20) }
	put := func(key string, body []byte) error {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/b/"+key, bytes.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("put %s: %s", key, resp.Status)
		}
		return nil
	}
	if err := put("checkpoint", version(0)); err != nil {
		t.Fatal(err)
	}
	const rounds = 1500
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 2 {
		wg.Go(func() {
			for i := range rounds {
				if err := put("checkpoint", version(i)); err != nil {
					errs <- err
					return
				}
				if err := put(fmt.Sprintf("tile/%d/%d", w, i), version(i+3)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 2 * rounds {
				resp, err := http.Get(srv.URL + "/b/checkpoint")
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				if len(b) == 0 || strings.Trim(string(b), string(b[:1])) != "" {
					errs <- fmt.Errorf("a read returned a torn object (%d bytes, starting %q)", len(b), b[:min(len(b), 16)])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
