package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// DefaultAnswersLimit is the user tree's page size when Options.AnswersLimit is 0: the
// 10k-action tree of issue #14's goal.
const DefaultAnswersLimit = 10_000

// Latencies are the timings of one kind of request, whole answer read.
type Latencies struct {
	Requests      int
	P50, P99, Max time.Duration
	// Bytes is the size of the first answer.
	Bytes int64
}

// Answers are the lineage-answer latencies measured after a run (Options.Answers).
type Answers struct {
	// Tenant and User are the user with the most records in the run; Actions is the number of
	// actions in their tree (the whole index, all runs on the data dir, up to the page size).
	Tenant, User string
	Actions      int
	// Truncated is set when the user has more actions than the page (Options.AnswersLimit).
	Truncated bool
	// Tree is GET /v1/lineage/users/{user}?proofs=false, TreeProofs the same with every
	// inclusion proof and leaf, Record GET /v1/records/{id} (the record with its inclusion
	// proof) for random published records.
	Tree, TreeProofs, Record Latencies
}

// percentile is the p-th percentile (0 < p ≤ 1) of sorted durations by the nearest-rank
// method: the smallest value with at least p of the values at or below it. 0 when empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p*float64(len(sorted))+0.999999999) - 1
	return sorted[min(len(sorted)-1, max(0, rank))]
}

func summarize(lat []time.Duration, firstBytes int64) Latencies {
	slices.Sort(lat)
	l := Latencies{Requests: len(lat), Bytes: firstBytes}
	if len(lat) > 0 {
		l.P50, l.P99, l.Max = percentile(lat, 0.50), percentile(lat, 0.99), lat[len(lat)-1]
	}
	return l
}

// timed GETs path, reads the whole answer and fails unless it is 200 OK. It returns the time
// from sending the request to the last byte, and the body when keep is set.
func (a apiClient) timed(path string, keep bool) (time.Duration, []byte, int64, error) {
	start := time.Now()
	resp, err := a.get(path)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	var body []byte
	var n int64
	if keep || resp.StatusCode != http.StatusOK {
		body, err = io.ReadAll(resp.Body)
		n = int64(len(body))
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	d := time.Since(start)
	if err != nil {
		return 0, nil, 0, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, nil, 0, fmt.Errorf("GET %s: %s: %.300s", path, resp.Status, body)
	}
	return d, body, n, nil
}

// answerClient is a client for the answers: the lineage answers of a 10k-action tree with
// every proof are tens of MB and take longer than the sampling client's timeout on a busy
// machine.
var answerClient = &http.Client{Timeout: 5 * time.Minute}

// measureAnswers times k requests of each kind (Answers) for the user (tenant, user) and k
// records drawn from recs.
func measureAnswers(a apiClient, k, limit int, tenant, user string, recs []sample, seed int64) (Answers, error) {
	a.client = answerClient
	ans := Answers{Tenant: tenant, User: user}
	tree := "/v1/lineage/users/" + url.PathEscape(user) + "?tenant=" + url.QueryEscape(tenant) + "&limit=" + strconv.Itoa(limit)
	for _, kind := range []struct {
		path string
		out  *Latencies
	}{{tree + "&proofs=false", &ans.Tree}, {tree, &ans.TreeProofs}} {
		lat := make([]time.Duration, 0, k)
		var first int64
		for i := 0; i < k; i++ {
			d, body, n, err := a.timed(kind.path, i == 0)
			if err != nil {
				return ans, fmt.Errorf("loadgen: answers: %w", err)
			}
			if i == 0 {
				first = n
				var t struct {
					Actions    *int   `json:"actions"`
					Truncated  bool   `json:"truncated"`
					NextCursor string `json:"next_cursor"`
				}
				if err := json.Unmarshal(body, &t); err != nil || t.Actions == nil {
					return ans, fmt.Errorf("loadgen: answers: GET %s: not a user lineage answer (%v)", kind.path, err)
				}
				if kind.out == &ans.Tree {
					ans.Actions, ans.Truncated = *t.Actions, t.Truncated || t.NextCursor != ""
				} else if *t.Actions != ans.Actions {
					return ans, fmt.Errorf("loadgen: answers: the tree has %d actions without proofs, %d with", ans.Actions, *t.Actions)
				}
			}
			lat = append(lat, d)
		}
		*kind.out = summarize(lat, first)
	}
	if len(recs) == 0 {
		return ans, nil
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 14))
	lat := make([]time.Duration, 0, k)
	var first int64
	for i := 0; i < k; i++ {
		s := recs[rng.IntN(len(recs))]
		d, _, n, err := a.timed("/v1/records/"+url.PathEscape(s.id)+"?tenant="+url.QueryEscape(s.tenant), false)
		if err != nil {
			return ans, fmt.Errorf("loadgen: answers: %w", err)
		}
		if i == 0 {
			first = n
		}
		lat = append(lat, d)
	}
	ans.Record = summarize(lat, first)
	return ans, nil
}
