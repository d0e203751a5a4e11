package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ingest"
	"github.com/lineage-audit/lineage/internal/cliflag"
	"github.com/lineage-audit/lineage/internal/demo"
	"github.com/lineage-audit/lineage/internal/natsclient"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func runPublish(args []string) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	url := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server")
	var natsSet natsclient.Settings
	natsSet.Register(fs)
	file := fs.String("file", "", "records to publish: a JSON array or NDJSON ('-' for stdin)")
	n := fs.Int("demo", 0, "publish N generated records of realistic multi-tenant agent traffic")
	seed := fs.Int64("seed", 1, "seed for --demo")
	tenants := fs.Int("tenants", 3, "tenants for --demo")
	failures := fs.Bool("failure-modes", true, "with --demo: include, at a low rate, each identity failure findings detect (internal/demo/findings.json is the matching lineaged --findings-config)")
	signKey := fs.String("sign-key", "", "sign every record with this source key seed file (lineagectl sourcekey create)")
	signKeyID := fs.String("sign-key-id", "", "key id of --sign-key")
	inflight := fs.Int("inflight", 4096, "publishes awaiting a JetStream ack at once")
	fs.Usage = cliflag.Usage(fs, envPrefix, "usage: lineagectl publish (--file F | --demo N) [flags]")
	if err := cliflag.Parse(fs, envPrefix, args); err != nil {
		return err
	}
	if (*file == "") == (*n == 0) {
		return errors.New("give exactly one of --file or --demo N")
	}
	creds, err := natsSet.Options()
	if err != nil {
		return err
	}
	opts := append([]nats.Option{nats.Name("lineagectl")}, creds...)
	nc, err := nats.Connect(*url, opts...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *url, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(*inflight))
	if err != nil {
		return err
	}
	p := &publisher{js: js, start: time.Now(), last: time.Now(), keyID: *signKeyID}
	if *signKey != "" {
		if p.key, err = ingest.LoadSourceKeySeed(*signKey); err != nil {
			return err
		}
	}
	if *n > 0 {
		g := demo.New(demo.Options{Seed: *seed, Tenants: *tenants, FailureModes: *failures})
		for i := 0; i < *n; i++ {
			rec := g.Next()
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := p.publish(rec.Tenant, rec.ID, b); err != nil {
				return err
			}
		}
	} else {
		var r io.Reader = os.Stdin
		if *file != "-" {
			f, err := os.Open(*file)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		if err := eachRecord(r, func(raw []byte) error {
			rec, err := lineage.DecodeRecord(raw)
			if err != nil {
				// Refuse locally what the ingester would quarantine, and say which record.
				p.invalid++
				fmt.Fprintf(os.Stderr, "skipped record %d: %s\n", p.sent+p.invalid, safe(err.Error()))
				return nil
			}
			return p.publish(rec.Tenant, rec.ID, raw)
		}); err != nil {
			return err
		}
	}
	return p.finish()
}

type publisher struct {
	js            jetstream.JetStream
	key           ed25519.PrivateKey
	keyID         string
	sent, invalid int
	start, last   time.Time
}

// publish sends one record with Nats-Msg-Id ingest.MsgID (tenant/id/content hash), so a retried
// publish is dropped by the JetStream dedupe window, while a changed record with the same id
// still reaches the ingester and is quarantined as id_conflict.
func (p *publisher) publish(tenant, id string, data []byte) error {
	m := ingest.RecordMsg(tenant, id, data)
	if p.key != nil {
		m.Header.Set(ingest.HeaderSignature, ingest.Sign(p.key, p.keyID, data))
	}
	if err := ingest.PublishAsync(context.Background(), p.js, m); err != nil {
		return err
	}
	p.sent++
	if time.Since(p.last) > time.Second {
		p.last = time.Now()
		fmt.Fprintf(os.Stderr, "published %d records (%.0f/s)\n", p.sent, float64(p.sent)/time.Since(p.start).Seconds())
	}
	return nil
}

func (p *publisher) finish() error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("%d publishes still unacknowledged after 2m", p.js.PublishAsyncPending())
	}
	el := time.Since(p.start)
	fmt.Printf("published %d records in %s (%.0f records/s)", p.sent, el.Round(time.Millisecond), float64(p.sent)/el.Seconds())
	if p.invalid > 0 {
		fmt.Printf("; %d invalid records skipped\n", p.invalid)
		return fmt.Errorf("%d records were invalid", p.invalid)
	}
	fmt.Println()
	return nil
}

// eachRecord calls fn with each record of a JSON array or of NDJSON.
func eachRecord(r io.Reader, fn func([]byte) error) error {
	br := bufio.NewReaderSize(r, 1<<20)
	first, err := peekNonSpace(br)
	if err != nil {
		return err
	}
	if first == '[' {
		d := json.NewDecoder(br)
		if _, err := d.Token(); err != nil {
			return err
		}
		for d.More() {
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return fmt.Errorf("array element: %w", err)
			}
			if err := fn(raw); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if err := fn(append([]byte(nil), line...)); err != nil {
			return err
		}
	}
	return sc.Err()
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errors.New("no records in input")
			}
			return 0, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.ReadByte()
		default:
			return b[0], nil
		}
	}
}
