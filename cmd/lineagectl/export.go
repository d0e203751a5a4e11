package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lineage-audit/lineage/exporters"
	"github.com/lineage-audit/lineage/exporters/report"
	"github.com/lineage-audit/lineage/internal/cliflag"
)

// runExport starts a compliance export through the API (POST /v1/exports), and with --wait or
// --out follows it to the end and downloads its files, each checked against the SHA-256 the
// API lists. The bundle can then be checked offline with `lineagectl verify BUNDLE`.
func runExport(args []string) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	addAPIKeyFlag(fs)
	api := fs.String("api", "http://127.0.0.1:8080", "Lineage query API")
	kind := fs.String("kind", "", "eu-ai-act or fannie-mae")
	tenant := fs.String("tenant", "", "tenant to export")
	aiSystem := fs.String("ai-system", "", "only this AI system (ai_system.id; for fannie-mae, the lending process); default all")
	from := fs.String("from", "", "period start, inclusive (RFC 3339 or YYYY-MM-DD)")
	to := fs.String("to", "", "period end, exclusive (RFC 3339 or YYYY-MM-DD)")
	formats := fs.String("formats", "", "comma-separated report files to offer besides the bundle: json,csv,html (default all)")
	wait := fs.Bool("wait", false, "wait until the export has finished, showing progress")
	out := fs.String("out", "", "download the export's files (reports and bundle) into this directory; implies --wait")
	timeout := fs.Duration("timeout", 2*time.Hour, "give up waiting after this long")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl export --kind eu-ai-act|fannie-mae --tenant T --from DATE --to DATE [--ai-system S] [--wait] [--out DIR]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *kind == "" || *tenant == "" || *from == "" || *to == "" {
		return errors.New("--kind, --tenant, --from and --to are required")
	}
	body := exporters.CreateRequest{Kind: report.Kind(*kind), Tenant: *tenant, AISystem: *aiSystem, From: *from, To: *to}
	if *formats != "" {
		for _, f := range strings.Split(*formats, ",") {
			body.Formats = append(body.Formats, strings.TrimSpace(f))
		}
	}
	b, err := post(*api, "/v1/exports", body)
	if err != nil {
		return err
	}
	var j exporters.Job
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("POST /v1/exports: unexpected answer: %w", err)
	}
	fmt.Printf("export %s queued (%s of tenant %s, %s – %s)\n", safe(j.ID), safeV(j.Kind), safe(j.Tenant), safe(j.From), safe(j.To))
	if !*wait && *out == "" {
		fmt.Printf("its status: GET %s/v1/exports/%s (or run with --wait or --out DIR)\n", safe(strings.TrimRight(*api, "/")), safe(url.PathEscape(j.ID)))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if j, err = waitExport(ctx, *api, j.ID); err != nil {
		return err
	}
	fmt.Printf("export %s succeeded: %d records, %d findings, bundle %s (sha256 %s), checkpoint size %d, logged as record %s\n",
		safe(j.ID), j.Records, len(j.Findings), safe(j.Bundle), safe(j.BundleSHA256), j.CheckpointSize, safe(j.RecordID))
	for _, f := range j.Findings {
		fmt.Printf("  finding [%s] %s: %s\n", safe(f.Severity), safe(f.Code), safe(f.Message))
	}
	if *out == "" {
		return nil
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for _, f := range j.Files {
		if err := downloadFile(ctx, *api, j.ID, f, *out); err != nil {
			return err
		}
	}
	fmt.Printf("downloaded %d files into %s\nverify offline: lineagectl verify %s --verifier-file <log public key file>\n",
		len(j.Files), safe(*out), safe(filepath.Join(*out, j.Bundle)))
	return nil
}

// waitExport polls the job until it succeeds or fails, printing progress to stderr.
func waitExport(ctx context.Context, api, id string) (exporters.Job, error) {
	var j exporters.Job
	last := ""
	for {
		b, err := get(api, "/v1/exports/"+url.PathEscape(id))
		if err != nil {
			return j, err
		}
		if err := json.Unmarshal(b, &j); err != nil {
			return j, fmt.Errorf("GET /v1/exports/%s: unexpected answer: %w", id, err)
		}
		line := j.Status
		if p := j.Progress; p.Total > 0 && j.Status == exporters.StatusRunning {
			line = fmt.Sprintf("%s: %s %d/%d entries (%.0f%%), %d records in scope", j.Status, p.Phase, p.Scanned, p.Total,
				100*float64(p.Scanned)/float64(p.Total), p.Matched)
		}
		if line != last {
			fmt.Fprintln(os.Stderr, safe(line))
			last = line
		}
		switch j.Status {
		case exporters.StatusSucceeded:
			return j, nil
		case exporters.StatusFailed:
			return j, fmt.Errorf("export %s failed: %s", id, j.Error)
		}
		select {
		case <-ctx.Done():
			return j, fmt.Errorf("export %s: still %s after the timeout", id, j.Status)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// fileNameRE is what a downloaded file may be called: the API is trusted to run exports, not
// to pick paths on this machine.
var fileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// downloadClient has no overall timeout: a bundle of a million records takes a while; the
// caller's context bounds the wait instead.
var downloadClient = &http.Client{}

// downloadFile streams one export file into dir, checks its size and SHA-256 against the job's
// listing, and only then gives it its name.
func downloadFile(ctx context.Context, api, id string, f report.FileInfo, dir string) error {
	if !fileNameRE.MatchString(f.Name) || strings.Contains(f.Name, "..") {
		return fmt.Errorf("export %s lists a file named %q; refusing to write it", id, f.Name)
	}
	path := "/v1/exports/" + url.PathEscape(id) + "/files/" + url.PathEscape(f.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(api, "/")+path, nil)
	if err != nil {
		return err
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := downloadClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	dst := filepath.Join(dir, f.Name)
	tmp, err := os.CreateTemp(dir, "."+f.Name+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, f.Size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s: %w", f.Name, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); n != f.Size || sum != f.SHA256 {
		return fmt.Errorf("download %s: got %d bytes with sha256 %s; the export lists %d bytes, sha256 %s", f.Name, n, sum, f.Size, f.SHA256)
	}
	return os.Rename(tmp.Name(), dst)
}

// post sends a JSON body and returns the body of a 2xx answer, turning error answers into
// errors (as get does).
func post(api, path string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return call(http.MethodPost, api, path, b, 16<<20)
}
