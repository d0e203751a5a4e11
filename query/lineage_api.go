package query

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	lineage "github.com/lineage-audit/lineage"
	"github.com/lineage-audit/lineage/ledger"
	"github.com/lineage-audit/lineage/ledger/seal"
	"github.com/lineage-audit/lineage/query/auth"
	"github.com/lineage-audit/lineage/query/index"
	"github.com/lineage-audit/lineage/verify"
)

// Every lineage answer is verifiable: it names one signed checkpoint (Checkpoint, the note as
// published) and every action in it carries its log index, the exact ledger entry (leaf) and an
// inclusion proof against that checkpoint. `lineagectl lineage --verify` (VerifyAnswer) re-checks
// a whole answer with the log's public key alone. Proofs can be left out with proofs=false.

// DefaultPage is the page size of lineage answers; a page with proofs is about 2.5 KB an action.
const DefaultPage = 1000

// The answer types are defined in the verify package (verify/answer.go), so that an auditor
// can decode and check them without this package's server dependencies; these aliases keep
// their names here.
type (
	// Proof is what makes one action verifiable.
	Proof = verify.Proof
	// Flag points an auditor at something wrong in the answer's records.
	Flag = verify.Flag
	// Answer is what every lineage answer shares.
	Answer = verify.Answer
	// UserLineage is the answer of GET /v1/lineage/users/{user_id}.
	UserLineage = verify.UserLineage
	// AgentLineage is the answer of GET /v1/lineage/agents/{agent_id}.
	AgentLineage = verify.AgentLineage
	// AgentUser is a natural person an agent acted for.
	AgentUser = verify.AgentUser
	// ActionChain is the answer of GET /v1/lineage/actions/{id}.
	ActionChain = verify.ActionChain
	// PolicyDecisions is the answer of GET /v1/lineage/policies/{policy_id}.
	PolicyDecisions = verify.PolicyDecisions
)

// filters reads the query parameters shared by lineage queries.
func (a *API) filters(c *gin.Context, q *index.Query) bool {
	q.Tenant = c.Query("tenant")
	if !lineage.ValidTenant(q.Tenant) {
		fail(c, http.StatusBadRequest, "query parameter \"tenant\" is required")
		return false
	}
	if p := auth.From(c); !p.CanSee(q.Tenant) {
		fail(c, http.StatusForbidden, "%s may not read tenant %q", p.Subject, q.Tenant)
		return false
	}
	var ok bool
	if q.From, q.To, ok = parseWindow(c); !ok {
		return false
	}
	q.Effects = c.QueryArray("effect")
	for _, e := range q.Effects {
		if e != lineage.EffectAllow && e != lineage.EffectDeny && e != lineage.EffectModify && e != lineage.EffectEscalate {
			fail(c, http.StatusBadRequest, "effect must be allow, deny, modify or escalate")
			return false
		}
	}
	q.ActionTypes = c.QueryArray("action_type")
	if q.ActionTarget, ok = actionTarget(c); !ok {
		return false
	}
	q.Agent = c.Query("agent")
	q.Limit = DefaultPage
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLineageLimit {
			fail(c, http.StatusBadRequest, "limit must be 1..%d", MaxLineageLimit)
			return false
		}
		q.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		cur, err := decodeCursor(v)
		if err != nil {
			fail(c, http.StatusBadRequest, "invalid cursor")
			return false
		}
		q.After = &cur
	}
	return true
}

// MaxActionTarget bounds the action_target parameter, in bytes.
const MaxActionTarget = 512

// actionTarget reads the action_target parameter (index.Query.ActionTarget): an exact target,
// or a prefix when it ends with "*". A lone "*" would match everything and is refused, like a
// repeated parameter (one target per query), an over-long value, invalid UTF-8 (targets are
// text) and NUL, which the index drivers need not handle (index.Query.ActionTarget: SQLite's
// LIKE ends its pattern at a NUL; query/index/sqlite/search.go).
func actionTarget(c *gin.Context) (string, bool) {
	vals := c.QueryArray("action_target")
	if len(vals) == 0 {
		return "", true
	}
	v := vals[0]
	switch {
	case len(vals) > 1:
		fail(c, http.StatusBadRequest, "action_target may be given once")
	case v == "*":
		fail(c, http.StatusBadRequest, "action_target * would match every target: leave the parameter out")
	case len(v) > MaxActionTarget:
		fail(c, http.StatusBadRequest, "action_target is longer than %d bytes", MaxActionTarget)
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		fail(c, http.StatusBadRequest, "action_target must be UTF-8 text without NUL")
	default:
		return v, true
	}
	return "", false
}

// cursorJSON is the cursor's content; clients treat the base64 as opaque.
type cursorJSON struct {
	T int64  `json:"t"`
	I uint64 `json:"i"`
}

func encodeCursor(c index.Cursor) string {
	b, _ := json.Marshal(cursorJSON{c.TimeNS, c.Index})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (index.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) > 64 {
		return index.Cursor{}, errors.New("cursor")
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return index.Cursor{}, err
	}
	return index.Cursor{TimeNS: c.T, Index: c.I}, nil
}

// search runs q (one more row than the page, to know whether another page follows), keeps
// rows below the checkpoint, and fills the answer's checkpoint and cursor.
func (a *API) search(c *gin.Context, q index.Query, ans *Answer) ([]index.Row, ledger.Checkpoint, bool) {
	cp, ok := a.latest(c)
	if !ok {
		return nil, cp, false
	}
	page := q.Limit
	q.Limit++
	rows, err := a.Store.Records(c.Request.Context(), q)
	if err != nil {
		a.internal(c, "lineage query", err)
		return nil, cp, false
	}
	// Rows indexed after the checkpoint was read are left for the next answer, so every index
	// is provable against the checkpoint this one names.
	kept := rows[:0]
	for _, r := range rows {
		if r.Index < cp.Size {
			kept = append(kept, r)
		}
	}
	if len(kept) > page {
		kept = kept[:page]
		last := kept[page-1]
		t, _ := last.Record.ParsedTime()
		ans.NextCursor = encodeCursor(index.Cursor{TimeNS: t.UnixNano(), Index: last.Index})
	}
	ans.Tenant, ans.CheckpointSize, ans.Checkpoint = q.Tenant, cp.Size, string(cp.Note)
	ans.Flags = Flags(kept)
	return kept, cp, true
}

// withProofs attaches leaves and inclusion proofs to the nodes, unless proofs=false; rows are
// the index rows the nodes were built from (found by log index). The proofs come from one pass
// over the tiles (InclusionProofs). The leaves are read at the same time: from a log with tiles,
// each leaf is rebuilt from its row (rebuildLeaves) and served only if its hash equals the leaf
// hash in the level-0 tile the proof pass reads; every other leaf is read from its entry bundle.
func (a *API) withProofs(c *gin.Context, cp ledger.Checkpoint, nodes []*ActionNode, rows []index.Row) bool {
	if c.Query("proofs") == "false" || len(nodes) == 0 {
		return true
	}
	idx := make([]uint64, len(nodes))
	for i, n := range nodes {
		idx[i] = n.LogIndex
	}
	_, tiles := a.Log.(TileReader)
	var (
		proofs     [][][]byte
		leafHashes [][]byte
		perr       error
		done       = make(chan struct{})
	)
	// The request's context, not gin's: a gin.Context must not be used from other goroutines.
	ctx := c.Request.Context()
	go func() {
		defer close(done)
		proofs, leafHashes, perr = inclusionProofs(ctx, a.Log, idx, cp.Size, tiles)
	}()
	var (
		leaves  [][]byte
		claimed [][]byte // claimed[i]: leaf hash of the rebuilt leaves[i], nil if read from the log
		err     error
	)
	if tiles {
		leaves, claimed, err = a.rebuildLeaves(ctx, idx, rows, cp.Size)
	} else {
		leaves, err = a.leaves(ctx, idx, cp.Size)
	}
	<-done
	if err != nil {
		a.internal(c, "read leaves", err)
		return false
	}
	if perr != nil {
		a.internal(c, "inclusion proof", perr)
		return false
	}
	if tiles {
		if err := a.checkLeaves(ctx, idx, leaves, claimed, leafHashes, cp.Size); err != nil {
			a.internal(c, "read leaves", err)
			return false
		}
	}
	for i, n := range nodes {
		n.Proof = &Proof{Leaf: leaves[i], InclusionProof: proofs[i]}
		if seal.IsV2(leaves[i]) {
			// The action shows the clear values whose keys exist; their openings let the
			// client check each against its commitment in the leaf.
			_, openings, _, err := a.Decoder.OpenEntry(ctx, leaves[i])
			if err != nil {
				a.internal(c, "open sealed entry", err)
				return false
			}
			n.Proof.Openings = verify.Openings(openings)
		}
	}
	return true
}

// rebuildLeaves returns the entries at idx: rebuilt from their rows (index.Row.Entry) where the
// row has what it takes, with their leaf hashes in claimed[i] still to be checked against the
// log (checkLeaves); read from the log (leaves) for the others (rows indexed before the
// envelope columns existed, drivers without them), with claimed[i] nil.
func (a *API) rebuildLeaves(ctx context.Context, idx []uint64, rows []index.Row, size uint64) (leaves, claimed [][]byte, err error) {
	byIndex := make(map[uint64]*index.Row, len(rows))
	for i := range rows {
		byIndex[rows[i].Index] = &rows[i]
	}
	leaves = make([][]byte, len(idx))
	claimed = make([][]byte, len(idx))
	var missing []int
	for i, x := range idx {
		r := byIndex[x]
		if r == nil {
			missing = append(missing, i)
			continue
		}
		entry, ok := r.Entry()
		if !ok {
			missing = append(missing, i)
			continue
		}
		leaves[i], claimed[i] = entry, ledger.LeafHash(entry)
	}
	if err := a.readLeaves(ctx, idx, missing, leaves, size); err != nil {
		return nil, nil, err
	}
	return leaves, claimed, nil
}

// checkLeaves keeps a rebuilt leaf only if its hash (claimed[i]) is the log's (logged[i], from
// the level-0 tile); any other is replaced by the entry read from the log. So the answer
// carries exactly the logged bytes, whatever the index holds. A mismatch means the index
// disagrees with the log (a tampered or corrupt row) and is logged.
func (a *API) checkLeaves(ctx context.Context, idx []uint64, leaves, claimed, logged [][]byte, size uint64) error {
	if len(logged) != len(idx) {
		return fmt.Errorf("%d leaf hashes for %d leaves", len(logged), len(idx))
	}
	var bad []int
	for i, h := range claimed {
		if h != nil && !bytes.Equal(h, logged[i]) {
			bad = append(bad, i)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if a.Logger != nil {
		a.Logger.Warn("api: index rows do not rebuild their logged entries; served from the log",
			"count", len(bad), "first_index", idx[bad[0]])
	}
	return a.readLeaves(ctx, idx, bad, leaves, size)
}

// readLeaves reads the entries idx[i] for i in which from the log into leaves[i].
func (a *API) readLeaves(ctx context.Context, idx []uint64, which []int, leaves [][]byte, size uint64) error {
	if len(which) == 0 {
		return nil
	}
	sub := make([]uint64, len(which))
	for j, i := range which {
		sub[j] = idx[i]
	}
	read, err := a.leaves(ctx, sub, size)
	if err != nil {
		return err
	}
	for j, i := range which {
		leaves[i] = read[j]
	}
	return nil
}

// BundleReader is implemented by logs that read some entries of an entry bundle without
// copying all of it (ledger/tessera reads the bundle file only up to the last wanted entry): BundleEntries returns copies of the
// entries at offsets offs (ascending, repeats allowed) of bundle `bundle`, below treeSize.
type BundleReader interface {
	BundleEntries(ctx context.Context, bundle uint64, offs []uint64, treeSize uint64) ([][]byte, error)
}

// bundlesPerReader is how many entry bundles justify one more reader of an answer's leaves.
var bundlesPerReader = 16

// leaves reads the entries at idx (any order) below size, reading each entry bundle once. The
// entries are copied out of their bundle, so a reader holds one bundle at a time (a 10k-action
// answer may touch every bundle of the log), and the bundles are shared out among up to
// GOMAXPROCS readers.
func (a *API) leaves(ctx context.Context, idx []uint64, size uint64) ([][]byte, error) {
	const width = 256 // C2SP tlog-tiles entry bundle width
	order := make([]int, len(idx))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(idx[x], idx[y]) })
	// runs[k] is the start in order of the k-th bundle's indexes.
	var runs []int
	for k, i := range order {
		if k == 0 || idx[i]/width != idx[order[k-1]]/width {
			runs = append(runs, k)
		}
	}
	runs = append(runs, len(order))
	out := make([][]byte, len(idx))
	br, _ := a.Log.(BundleReader)
	read := func(from, to int) error { // bundles runs[from:to]
		for r := from; r < to; r++ {
			b := idx[order[runs[r]]] / width
			run := order[runs[r]:runs[r+1]]
			if br != nil {
				offs := make([]uint64, len(run))
				for j, i := range run {
					offs[j] = idx[i] % width
				}
				entries, err := br.BundleEntries(ctx, b, offs, size)
				if err != nil {
					return err
				}
				for j, i := range run {
					out[i] = entries[j]
				}
				continue
			}
			start := b * width
			bundle, err := a.Log.Entries(ctx, start, min(width, size-start), size)
			if err != nil {
				return err
			}
			for _, i := range run {
				out[i] = bytes.Clone(bundle[idx[i]%width])
			}
		}
		return nil
	}
	bundles := len(runs) - 1
	workers := min(runtime.GOMAXPROCS(0), (bundles+bundlesPerReader-1)/bundlesPerReader)
	if workers <= 1 {
		return out, read(0, bundles)
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = read(w*bundles/workers, (w+1)*bundles/workers)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func nodesOf(rows []index.Row) []*ActionNode {
	out := make([]*ActionNode, len(rows))
	for i := range rows {
		out[i] = actionNode(&rows[i])
	}
	return out
}

func (a *API) userLineage(c *gin.Context) {
	q := index.Query{UserID: c.Param("user_id")}
	if !a.filters(c, &q) {
		return
	}
	var out UserLineage
	rows, cp, ok := a.search(c, q, &out.Answer)
	if !ok {
		return
	}
	person := lineage.Person{ID: q.UserID}
	if len(rows) > 0 {
		person = rows[0].Record.User
	}
	out.UserTree = BuildUserTree(person, rows, out.NextCursor != "")
	if !a.withProofs(c, cp, out.UserTree.Nodes(), rows) {
		return
	}
	if !q.From.IsZero() {
		out.From = q.From.Format(time.RFC3339Nano)
	}
	if !q.To.IsZero() {
		out.To = q.To.Format(time.RFC3339Nano)
	}
	writeAnswer(c, &out)
}

func (a *API) agentLineage(c *gin.Context) {
	q := index.Query{AgentID: c.Param("agent_id")}
	if !a.filters(c, &q) {
		return
	}
	q.Agent = ""
	out := AgentLineage{Agent: q.AgentID, Users: []AgentUser{}}
	rows, cp, ok := a.search(c, q, &out.Answer)
	if !ok {
		return
	}
	users := map[lineage.Person]int{}
	var order []lineage.Person
	for _, r := range rows {
		if _, seen := users[r.Record.User]; !seen {
			order = append(order, r.Record.User)
		}
		users[r.Record.User]++
	}
	for _, u := range order {
		out.Users = append(out.Users, AgentUser{Person: u, Actions: users[u]})
	}
	out.Actions = nodesOf(rows)
	if !a.withProofs(c, cp, out.Actions, rows) {
		return
	}
	writeAnswer(c, &out)
}

// MaxChain bounds how many parent links an action chain follows (a guard against cycles and
// pathological data; real crews are a few levels deep).
const MaxChain = 64

func (a *API) actionChain(c *gin.Context) {
	tenant, id := c.Query("tenant"), c.Param("id")
	if !lineage.ValidTenant(tenant) {
		fail(c, http.StatusBadRequest, "query parameter \"tenant\" is required")
		return
	}
	if !auth.From(c).CanSee(tenant) {
		fail(c, http.StatusNotFound, "no record %q in tenant %q", id, tenant)
		return
	}
	cp, ok := a.latest(c)
	if !ok {
		return
	}
	out := ActionChain{Answer: Answer{Tenant: tenant, CheckpointSize: cp.Size, Checkpoint: string(cp.Note)}, Oversight: []*ActionNode{}, Complete: true}
	var rows []index.Row
	seen := map[string]bool{}
	for cur := id; cur != "" && len(rows) < MaxChain && !seen[cur]; {
		seen[cur] = true
		r, err := a.Store.Get(c.Request.Context(), tenant, cur)
		if errors.Is(err, index.ErrNotFound) || (err == nil && r.Index >= cp.Size) {
			if cur == id {
				fail(c, http.StatusNotFound, "no record %q in tenant %q", id, tenant)
				return
			}
			out.Complete = false
			break
		}
		if err != nil {
			a.internal(c, "get", err)
			return
		}
		rows = append(rows, r)
		cur = r.Record.ParentID
	}
	if len(rows) == MaxChain && rows[len(rows)-1].Record.ParentID != "" {
		out.Complete = false
	}
	root := rows[len(rows)-1].Record
	out.AuthorizedBy, out.Delegation = root.User, root.Delegation
	out.Chain = nodesOf(rows)
	// Oversight: chain members that carry a review, and reviews recorded as their children.
	var over []index.Row
	for i, r := range rows {
		if r.Record.HumanOversight != nil {
			over = append(over, rows[i])
		}
		kids, err := a.Store.Records(c.Request.Context(), index.Query{Tenant: tenant, ParentID: r.Record.ID, Limit: 100})
		if err != nil {
			a.internal(c, "children", err)
			return
		}
		for _, k := range kids {
			if k.Record.HumanOversight != nil && k.Index < cp.Size && !seen[k.Record.ID] {
				over = append(over, k)
			}
		}
	}
	out.Oversight = nodesOf(over)
	out.Flags = Flags(append(append([]index.Row{}, rows...), over...))
	if !a.withProofs(c, cp, append(append([]*ActionNode{}, out.Chain...), out.Oversight...), append(rows, over...)) {
		return
	}
	c.JSON(http.StatusOK, out)
}

func (a *API) policyDecisions(c *gin.Context) {
	q := index.Query{PolicyID: c.Param("policy_id")}
	if !a.filters(c, &q) {
		return
	}
	if c.Query("limit") == "" {
		q.Limit = 20 // examples, not the whole history: page on with cursor for more
	}
	out := PolicyDecisions{Policy: q.PolicyID}
	rows, cp, ok := a.search(c, q, &out.Answer)
	if !ok {
		return
	}
	st, err := a.Store.PolicyStats(c.Request.Context(), q.Tenant, q.PolicyID, q.From, q.To)
	if err != nil {
		a.internal(c, "policy stats", err)
		return
	}
	out.Stats = st
	out.Examples = nodesOf(rows)
	if !a.withProofs(c, cp, out.Examples, rows) {
		return
	}
	c.JSON(http.StatusOK, out)
}

// Flags finds what auditors must be told about a set of records: agent identities shared by
// several roles, and users not bound to an identity-provider issuer.
func Flags(rows []index.Row) []Flag {
	flags := []Flag{}
	roles := map[string]map[string][]string{} // agent → role → record ids
	unbound := map[string][]string{}          // user → record ids
	var agents, users []string
	for _, r := range rows {
		rec := &r.Record
		if rec.Role != "" {
			if roles[rec.Agent.ID] == nil {
				roles[rec.Agent.ID] = map[string][]string{}
				agents = append(agents, rec.Agent.ID)
			}
			roles[rec.Agent.ID][rec.Role] = append(roles[rec.Agent.ID][rec.Role], rec.ID)
		}
		if !boundIssuer(rec.User.Issuer) {
			if unbound[rec.User.ID] == nil {
				users = append(users, rec.User.ID)
			}
			unbound[rec.User.ID] = append(unbound[rec.User.ID], rec.ID)
		}
	}
	for _, ag := range agents {
		if len(roles[ag]) < 2 {
			continue
		}
		var names, ids []string
		for role, rids := range roles[ag] {
			names = append(names, role)
			ids = append(ids, rids[0])
		}
		sort.Strings(names)
		sort.Strings(ids)
		flags = append(flags, Flag{Kind: "shared_agent_id", Agent: ag, RecordIDs: ids,
			Detail: fmt.Sprintf("agent identity %s acts in roles %s: its actions cannot be attributed to one role by identity", ag, strings.Join(names, ", "))})
	}
	for _, u := range users {
		ids := unbound[u]
		flags = append(flags, Flag{Kind: "unbound_user", User: u, RecordIDs: ids[:min(len(ids), 10)],
			Detail: fmt.Sprintf("user %s is not bound to an identity-provider issuer URL (https://…) in %d records", u, len(ids))})
	}
	return flags
}

// boundIssuer tells whether an issuer is an identity provider's issuer identifier: an https URL
// with a host (OpenID Connect Discovery §3).
func boundIssuer(iss string) bool {
	rest, ok := strings.CutPrefix(iss, "https://")
	return ok && rest != "" && rest[0] != '/'
}
