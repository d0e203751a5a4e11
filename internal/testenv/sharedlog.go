package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// sharedLogSchema marks the MariaDB template of StartSharedLog apart from Trillian's: the
// database is empty (Tessera's AWS driver creates its own tables).
const sharedLogSchema = "-- Tessera AWS driver: tables are created by the driver\n"

// SharedLog is the shared storage of ledger/tesseraaws: a private MariaDB (the sequencing
// database) and a private S3-compatible bucket store (StartS3: gofakes3, or SeaweedFS with
// LINEAGE_TEST_S3=seaweedfs), both on loopback.
type SharedLog struct {
	S3       *S3Server
	Region   string
	KeyID    string // the S3 identity's credentials
	Secret   string
	maria    *mariaDB
	s3client *s3.Client
	bucket   string
	n        atomic.Int64
}

// StartSharedLog starts MariaDB and the S3 server for ledger/tesseraaws's tests; both are
// stopped when the test ends.
func StartSharedLog(t testing.TB) *SharedLog {
	t.Helper()
	bins := ensureMariaDB(t)
	tmpl := mariaDBTemplate(t, bins, []byte(sharedLogSchema))
	s := &SharedLog{}
	s.maria = startMariaDB(t, bins, tmpl)
	s.S3 = StartS3(t)
	s.Region, s.KeyID, s.Secret = s.S3.Region, s.S3.KeyID, s.S3.Secret
	s.s3client = s3.New(s3.Options{
		Region:                     s.Region,
		BaseEndpoint:               aws.String(s.S3.Endpoint),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.KeyID, s.Secret, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	// SeaweedFS's S3 gateway listens before the filer behind it is ready: wait until the server
	// lists buckets.
	ctx, cancel := context.WithTimeout(context.Background(), s3StartTimeout)
	defer cancel()
	for {
		_, err := s.s3client.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil {
			break
		}
		if ctx.Err() != nil || s.S3.proc.exited() {
			t.Fatalf("testenv: %s S3 not answering: %v\n%s", s.S3.Kind, err, s.S3.Tail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// One bucket holds every log of the test, each under its own prefix: SeaweedFS gives each
	// bucket a collection with volumes of its own, and a test that made a bucket per log would
	// run out of volume slots (gofakes3 has no such limit; one layout serves both).
	s.bucket = "lineage-logs"
	if _, err := s.s3client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		t.Fatalf("testenv: create bucket %s: %v\n%s", s.bucket, err, s.S3.Tail(20))
	}
	return s
}

// NewLog creates an empty database for one log, named after name, and returns the database's
// DSN (go-sql-driver/mysql form), the bucket and the log's object prefix in it.
func (s *SharedLog) NewLog(t testing.TB, name string) (dsn, bucket, prefix string) {
	t.Helper()
	id := s.n.Add(1)
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, strings.ToLower(name))
	if len(clean) > 20 {
		clean = clean[:20]
	}
	db := fmt.Sprintf("tessera_%s_%d", clean, id)
	if _, err := s.maria.sql(fmt.Sprintf("CREATE DATABASE %s; GRANT ALL ON %s.* TO '%s'@'127.0.0.1';", db, db, trillianUser)); err != nil {
		t.Fatalf("testenv: create database %s: %v", db, err)
	}
	return fmt.Sprintf("%s:%s@tcp(127.0.0.1:%d)/%s", trillianUser, trillianPassword, s.maria.port, db), s.bucket, fmt.Sprintf("log-%s-%d", clean, id)
}

// SQL runs statements as MariaDB's root user in database db and returns the tab-separated rows.
func (s *SharedLog) SQL(db, query string) (string, error) {
	return s.maria.sql("USE " + db + "; " + query)
}

// ServerCPU is the CPU time (user and system) mariadbd and the S3 server have used so far, read from
// /proc, for benchmarks that report the servers' cost beside the test process's.
func (s *SharedLog) ServerCPU() (time.Duration, error) {
	var total time.Duration
	for _, p := range []*proc{s.maria.proc, s.S3.proc} {
		d, err := procCPU(p.cmd.Process.Pid)
		if err != nil {
			return 0, fmt.Errorf("testenv: %s CPU: %w", p.name, err)
		}
		total += d
	}
	return total, nil
}

// procCPU reads utime+stime of pid from /proc/PID/stat (in clock ticks of 1/100 s, the Linux
// USER_HZ).
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat times", pid)
	}
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}
