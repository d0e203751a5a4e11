package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"
)

// Bounds of the witness client.
const (
	// MaxResponse bounds a 200 answer: cosignature lines are ~100 bytes, and a note carries at
	// most 100 signatures (golang.org/x/mod/sumdb/note).
	MaxResponse = 16 << 10
	// MaxErrorBody bounds the part of an error answer kept for the error and the log.
	MaxErrorBody = 4 << 10
	// MaxSignatureLines bounds the signature lines read from one answer.
	MaxSignatureLines = 100
	// DefaultRequestTimeout bounds one add-checkpoint request, connection included.
	DefaultRequestTimeout = 10 * time.Second
)

// Result classes of an add-checkpoint request, the "result" label of
// lineage_witness_requests_total.
const (
	ResultOK          = "ok"           // cosigned
	ResultConflict    = "conflict"     // 409 with the witness's size (text/x.tlog.size)
	ResultRefused     = "refused"      // any other answer but 200 (403, 404, 422, 400, ...)
	ResultUnreachable = "unreachable"  // no answer: connection, timeout, or 502/503/504
	ResultBadResponse = "bad_response" // 200, but no cosignature that verifies
)

// sizeContentType is the media type of a 409 answer carrying the witness's tree size (C2SP
// tlog-witness).
const sizeContentType = "text/x.tlog.size"

// Error is a failed add-checkpoint request.
type Error struct {
	Witness string // the witness's policy name
	Result  string // ResultConflict, ResultRefused, ResultUnreachable or ResultBadResponse
	Status  int    // the HTTP status, 0 when there was no answer
	// Body is the start of the witness's answer (at most MaxErrorBody bytes, control characters
	// replaced), its explanation of a refusal.
	Body string
	// Size is the witness's latest cosigned size for the log, from a 409 answer; HasSize says
	// whether the answer carried one.
	Size    uint64
	HasSize bool
	Err     error // the transport or parse error, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "witness %s: add-checkpoint: %s", e.Witness, e.Result)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.HasSize {
		fmt.Fprintf(&b, ": the witness's tree size is %d", e.Size)
	}
	if e.Body != "" {
		fmt.Fprintf(&b, ": %q", e.Body)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ResultOf classifies an AddCheckpoint error for the metrics: ResultOK for nil.
func ResultOf(err error) string {
	if err == nil {
		return ResultOK
	}
	var we *Error
	if errors.As(err, &we) {
		return we.Result
	}
	return ResultUnreachable
}

// Cosigned is a witness's verified answer to add-checkpoint.
type Cosigned struct {
	// Lines are the answer's signature lines that verify with the witness's key over the
	// checkpoint, each "— <name> <base64>\n", ready to append to the note.
	Lines []byte
	// Ignored counts the answer's signature lines that did not verify (another key, another
	// algorithm, or a bad signature); they are dropped.
	Ignored int
	// Time is the timestamp in the witness's cosignature (C2SP tlog-cosignature).
	Time time.Time
}

// Client sends checkpoints to witnesses with C2SP tlog-witness add-checkpoint requests.
type Client struct {
	// HTTP sends the requests (nil: NewHTTPClient()). Redirects should not be followed: a
	// witness answers directly.
	HTTP *http.Client
	// Timeout bounds one request (0: DefaultRequestTimeout).
	Timeout time.Duration
}

// NewHTTPClient returns the HTTP client witness requests use by default: the default
// transport's settings, redirects not followed (reported as a refusal).
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 4
	t.ResponseHeaderTimeout = DefaultRequestTimeout
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// AddCheckpoint asks w to cosign the signed checkpoint note signed, proving it consistent with
// the size oldSize the witness last cosigned (0 if never; proof is then empty). It returns the
// verified cosignature lines, or an *Error: a 409 answer with the witness's size has Result
// ResultConflict and HasSize set, so the caller can resynchronize.
func (c *Client) AddCheckpoint(ctx context.Context, w Witness, oldSize uint64, proof [][]byte, signed []byte) (Cosigned, error) {
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(RequestBody(oldSize, proof, signed)))
	if err != nil {
		return Cosigned{}, &Error{Witness: w.Name, Result: ResultUnreachable, Err: err}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := hc.Do(req)
	if err != nil {
		return Cosigned{}, &Error{Witness: w.Name, Result: ResultUnreachable, Err: err}
	}
	defer resp.Body.Close()
	limit := int64(MaxErrorBody)
	if resp.StatusCode == http.StatusOK {
		limit = MaxResponse
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Cosigned{}, &Error{Witness: w.Name, Result: ResultUnreachable, Status: resp.StatusCode, Err: fmt.Errorf("read answer: %w", err)}
	}
	truncated := int64(len(body)) > limit
	if truncated {
		body = body[:limit]
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if truncated {
			return Cosigned{}, &Error{Witness: w.Name, Result: ResultBadResponse, Status: resp.StatusCode,
				Err: fmt.Errorf("answer larger than %d bytes", MaxResponse)}
		}
		cs, err := VerifyCosignatures(signed, body, w.Verifier)
		if err != nil {
			return Cosigned{}, &Error{Witness: w.Name, Result: ResultBadResponse, Status: resp.StatusCode, Body: printable(body), Err: err}
		}
		return cs, nil
	case http.StatusConflict:
		e := &Error{Witness: w.Name, Result: ResultRefused, Status: resp.StatusCode, Body: printable(body)}
		if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == sizeContentType {
			n, err := ParseTreeSize(body)
			if err != nil {
				e.Result, e.Err = ResultBadResponse, err
				return Cosigned{}, e
			}
			e.Result, e.Size, e.HasSize = ResultConflict, n, true
		}
		return Cosigned{}, e
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return Cosigned{}, &Error{Witness: w.Name, Result: ResultUnreachable, Status: resp.StatusCode, Body: printable(body)}
	default:
		return Cosigned{}, &Error{Witness: w.Name, Result: ResultRefused, Status: resp.StatusCode, Body: printable(body)}
	}
}

var defaultHTTP = NewHTTPClient()

// RequestBody is the body of an add-checkpoint request (C2SP tlog-witness): "old <size>", the
// consistency proof's hashes in base64 one a line, an empty line, then the signed note.
func RequestBody(oldSize uint64, proof [][]byte, signed []byte) []byte {
	var b bytes.Buffer
	b.Grow(24 + len(proof)*45 + len(signed))
	b.WriteString("old ")
	b.WriteString(strconv.FormatUint(oldSize, 10))
	b.WriteByte('\n')
	for _, h := range proof {
		b.WriteString(base64.StdEncoding.EncodeToString(h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.Write(signed)
	return b.Bytes()
}

// ParseTreeSize parses the body of a 409 text/x.tlog.size answer: a decimal size (no sign, no
// leading zero) and a newline, nothing else.
func ParseTreeSize(b []byte) (uint64, error) {
	s, ok := bytes.CutSuffix(b, []byte("\n"))
	if !ok || len(s) == 0 || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("malformed tree size %q", printable(b))
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("malformed tree size %q", printable(b))
		}
	}
	n, err := strconv.ParseUint(string(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed tree size %q", printable(b))
	}
	return n, nil
}

// sigPrefix starts every signature line of a note.
const sigPrefix = "— "

// ParseSignatureLines splits a witness's 200 answer into signature lines ("— <name>
// <base64>\n" each, the newline kept). The whole answer must be such lines: anything else is
// an error. It checks the shape only, not the signatures.
func ParseSignatureLines(b []byte) ([][]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("empty answer")
	}
	if len(b) > MaxResponse {
		return nil, fmt.Errorf("answer larger than %d bytes", MaxResponse)
	}
	if b[len(b)-1] != '\n' {
		return nil, errors.New("answer does not end with a newline")
	}
	if !utf8.Valid(b) {
		return nil, errors.New("answer is not UTF-8")
	}
	var lines [][]byte
	for rest := b; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i+1]
		rest = rest[i+1:]
		if len(lines) == MaxSignatureLines {
			return nil, fmt.Errorf("more than %d signature lines", MaxSignatureLines)
		}
		if err := checkSignatureLine(line[:len(line)-1]); err != nil {
			return nil, fmt.Errorf("line %d: %w", len(lines)+1, err)
		}
		lines = append(lines, line)
	}
	return lines, nil
}

// checkSignatureLine checks one signature line (without its newline): "— ", a key name (no
// space, no '+', no control character), one space, and standard base64 of at least 5 bytes
// (a 4-byte key hash and a signature).
func checkSignatureLine(line []byte) error {
	rest, ok := bytes.CutPrefix(line, []byte(sigPrefix))
	if !ok {
		return errors.New(`not a signature line (no "— " prefix)`)
	}
	name, b64, ok := bytes.Cut(rest, []byte(" "))
	if !ok || len(name) == 0 || len(b64) == 0 {
		return errors.New("signature line is not \"— <name> <signature>\"")
	}
	for _, r := range string(name) {
		if r <= ' ' || r == '+' || r == 0x7f || r == utf8.RuneError || (r >= 0x80 && r <= 0x9f) {
			return fmt.Errorf("invalid key name %q", printable(name))
		}
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(string(b64))
	if err != nil || len(sig) < 5 {
		return errors.New("signature is not base64 of a key hash and a signature")
	}
	return nil
}

// VerifyCosignatures checks a witness's 200 answer against the checkpoint note it was asked
// to cosign: the signature lines that verify with v over the note's text are kept; the rest
// are counted as ignored. An answer that is not signature lines, or that has none verifying,
// is an error.
func VerifyCosignatures(signed, answer []byte, v note.Verifier) (Cosigned, error) {
	lines, err := ParseSignatureLines(answer)
	if err != nil {
		return Cosigned{}, err
	}
	var cs Cosigned
	one := make([]byte, 0, len(signed)+128)
	for _, line := range lines {
		one = append(append(one[:0], signed...), line...)
		n, err := note.Open(one, note.VerifierList(v))
		if err != nil || len(n.Sigs) != 1 || n.Sigs[0].Name != v.Name() || n.Sigs[0].Hash != v.KeyHash() {
			cs.Ignored++
			continue
		}
		if bytes.Contains(cs.Lines, line) {
			continue // the same line twice: keep one
		}
		if cs.Lines == nil {
			if ts, err := fnote.CoSigV1Timestamp(n.Sigs[0]); err == nil {
				cs.Time = ts
			}
		}
		cs.Lines = append(cs.Lines, line...)
	}
	if len(cs.Lines) == 0 {
		return Cosigned{}, fmt.Errorf("none of the %d signature lines verifies with the witness key %s", len(lines), v.Name())
	}
	return cs, nil
}

// printable returns up to MaxErrorBody bytes of b as text for errors and logs: invalid UTF-8
// and control characters other than newline and tab become U+FFFD, surrounding space trimmed.
func printable(b []byte) string {
	if len(b) > MaxErrorBody {
		b = b[:MaxErrorBody]
	}
	s := strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(string(b), "\uFFFD"))
	return strings.TrimSpace(s)
}
