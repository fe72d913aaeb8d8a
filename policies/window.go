package policies

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
)

// Windows keeps the recent samples of every series (deployment, node, host,
// metric), with time taken from the messages. Memory is bounded: samples
// older than Horizon go, a series keeps at most MaxSamples, and a series
// that stops reporting expires after its ttl (as Riemann's index).
type Windows struct {
	Horizon    float64 // seconds of history kept (the longest window used)
	MaxSamples int
	DefaultTTL float64
	// MaxSeries and MaxSeriesPerDeployment bound how many series are kept
	// (0: no bound): a metric that would start one more is refused, so
	// distinct hosts or metric names cannot grow memory without end.
	MaxSeries, MaxSeriesPerDeployment int

	series   map[seriesKey]*series
	byAlias  map[string][]*series // deployment \x00 alias -> series
	byDeploy map[string][]*series
	// setGen counts the series started and gone: a selection found at
	// an older one is found again. gen counts every change to the
	// windows: a selection's memo made at an older one is forgotten.
	setGen, gen uint64
	now         float64
	// sels are the selections of the policies' windows, shared by every
	// policy reading the same one (by deployment, metric or pattern, and
	// interned node set).
	sels map[selKey]*selection
	// hosts is the scratch of a reduction by host (the windows, as the
	// pipeline that owns them, are used by one goroutine at a time: even
	// a read memoizes).
	hosts hostSet
	// pct keeps, per percentile window, its values in order, moved on
	// by what entered and left the window since it was last read;
	// pctSpans and pctValues are their scratch. bySort is the old way
	// (copy and sort the window at each read), for the benchmarks and
	// the differential tests.
	pct        map[pctKey]*pctState
	pctSpans   []pctSpan
	pctValues  []float64
	pctRefills int
	bySort     bool
}

// selKey names a selection: a deployment's series of one metric or whose
// service matches a pattern, on an interned set of nodes.
type selKey struct {
	deployment, metric string
	pattern            *regexp.Regexp
	nodes              uint64
}

// A selection is the series a window selects, shared by every policy
// that reads it: found once, and again only when a series starts or goes
// (setGen); and its reductions at a time, memoized until the windows
// change (gen), so the policies of a deployment reading the same window
// at the same time compute it once.
type selection struct {
	w    *Windows
	key  selKey
	gone bool // its deployment was dropped: ask for it again
	gen  uint64
	list []*series
	// inline holds the list of a few series (most windows' hosts), so
	// reading them takes no other allocation.
	inline [4]*series
	// memo[:smallMemo] is scanned, memoMany hashed beyond that.
	memoGen  uint64
	memo     []memoEntry
	memoMany map[memoKey]memoized
}

// smallMemo is how many reductions a selection's memo scans before it
// hashes: a metric usually evaluates a handful.
const smallMemo = 16

type memoEntry struct {
	k memoKey
	m memoized
}

// memoKey is a reduction of a selection's series at a time.
type memoKey struct {
	fn                string
	seconds, now, arg float64
	minHosts          int
}

type memoized struct {
	v, hosts float64
	ok       bool
}

// selectionOf is the selection of q (nil when q's nodes are not an
// interned set), cached in *cache by whoever asks again (nil: none).
func (w *Windows) selectionOf(q *Query, cache **selection) *selection {
	if cache != nil {
		if sel := *cache; sel != nil && sel.w == w && !sel.gone {
			return sel
		}
	}
	if q.nodesID == 0 {
		return nil
	}
	k := selKey{deployment: q.Deployment, metric: q.Metric, pattern: q.Pattern, nodes: q.nodesID}
	if q.Pattern != nil {
		k.metric = ""
	}
	sel := w.sels[k]
	if sel == nil {
		if w.sels == nil {
			w.sels = map[selKey]*selection{}
		}
		sel = &selection{w: w, key: k}
		sel.list = sel.inline[:0]
		w.sels[k] = sel
	}
	if cache != nil {
		*cache = sel
	}
	return sel
}

// meanHostsFn names MeanHosts' pair in a memo.
const meanHostsFn = "mean+hosts"

// remembered returns the memo of a reduction of q over the selection
// (nil: none, nothing memoized).
func (sel *selection) remembered(fn string, q *Query, arg float64) (memoKey, memoized, bool) {
	if sel == nil {
		return memoKey{}, memoized{}, false
	}
	if sel.memoGen != sel.w.gen {
		sel.memo = sel.memo[:0]
		if len(sel.memoMany) > 0 {
			clear(sel.memoMany)
		}
		sel.memoGen = sel.w.gen
	}
	k := memoKey{fn: fn, seconds: q.Seconds, now: q.Now, arg: arg, minHosts: q.MinHosts}
	m, seen := sel.recall(sel.w, k)
	return k, m, seen
}

// recall is the memo of reduction k over the selection, in w and while
// nothing changed there since it was made (false: ask Reduce or
// MeanHosts). It needs no query: the other policies reading a window
// at a time take what the first computed.
func (sel *selection) recall(w *Windows, k memoKey) (memoized, bool) {
	if sel == nil || sel.w != w || sel.gone || sel.memoGen != w.gen {
		return memoized{}, false
	}
	for i := range sel.memo {
		if sel.memo[i].k == k {
			return sel.memo[i].m, true
		}
	}
	m, seen := sel.memoMany[k]
	return m, seen
}

// keep memoizes a reduction remembered did not know.
func (sel *selection) keep(k memoKey, m memoized) {
	if sel == nil {
		return
	}
	if len(sel.memo) < smallMemo {
		sel.memo = append(sel.memo, memoEntry{k, m})
		return
	}
	if sel.memoMany == nil {
		sel.memoMany = map[memoKey]memoized{}
	}
	sel.memoMany[k] = m
}

// seriesKey names a series: a host's metric (its name and path as sent,
// not joined, so finding a metric's series allocates nothing).
type seriesKey struct {
	deployment, node, host, name, path string
}

// sample is a value at a time, with the prefix sum of its series up to
// it (cum): a window's sum reads the samples at its ends, not an array
// of sums elsewhere.
type sample struct{ t, v, cum float64 }

type series struct {
	// What every window over it reads comes first, in two cache lines
	// (a metric's windows are over a deployment's series that no other
	// metric touched for a while).
	//
	// samples[head:] are the live samples, in time order; samples[i].cum
	// is the sum of samples[0..i], so a window's sum is two lookups, not
	// a loop.
	samples []sample
	head    int
	// big counts the live samples of magnitude bigValue or more: while
	// there is one, a difference of prefix sums would lose the small
	// samples beside it (1e17, then 1, 2, 3: their sum came out 0), so
	// sums loop over the window instead.
	big     int
	expires float64
	host    string // key.host
	// win is its last window's count and sum (window), until the series
	// changes or a window moves past one of its samples.
	win winMemo
	// base is the number of samples compacted away before samples[0]
	// (base+i names a sample for as long as the series lives); edits
	// counts the late samples inserted before others, which renumber
	// them.
	base  int
	edits uint32
	// readers are the policies its metrics evaluate, found at the
	// pipeline's generation readersGen (Pipeline.readers).
	readersGen uint64
	readers    []*Instance
	// clock is its deployment's (Pipeline.apply), once found.
	clock *clock
	// gone: it is no longer in the windows (expired, or its deployment
	// dropped); an identity that kept it finds its series again.
	gone bool

	key     seriesKey
	service string
	aliases []string // the names a window may use for it: name, path, name.path
	// matched remembers which services() patterns the service matches.
	matched []patternMatch
}

// winMemo is a series' samples in a window (from, to]: how many, their
// sum, and the times that bound the window's moves keeping them the same:
// the live sample before them (before), their first and last, and the
// sample after them (after).
type winMemo struct {
	ok                         bool
	n                          int
	sum                        float64
	before, first, last, after float64
}

// window is the count and sum of the samples in (from, to]. A window over
// a series that no metric changed since its last read, moved on by less
// than the time to its samples' neighbours, is what it was: the samples
// (cold, in another deployment's turn) are not read.
func (s *series) window(from, to float64) (int, float64) {
	c := &s.win
	if c.ok && c.before <= from && to < c.after && (c.n == 0 || from < c.first && c.last <= to) {
		return c.n, c.sum
	}
	lo, hi := s.span(from, to)
	c.ok, c.n, c.sum = true, hi-lo, 0
	c.before, c.after = math.Inf(-1), math.Inf(1)
	if lo > s.head {
		c.before = s.samples[lo-1].t
	}
	if hi < len(s.samples) {
		c.after = s.samples[hi].t
	}
	if hi > lo {
		c.sum, c.first, c.last = s.sum(lo, hi), s.samples[lo].t, s.samples[hi-1].t
	}
	return c.n, c.sum
}

// bigValue is the magnitude from which a sample makes prefix sums inexact
// for the samples around it.
const bigValue = 1 << 24

// add inserts a sample in time order (a late one is rare: the prefix sums
// after it are recomputed).
func (s *series) add(t, v float64) {
	s.win.ok = false
	if math.Abs(v) >= bigValue {
		s.big++
	}
	n := len(s.samples)
	if n == s.head || s.samples[n-1].t <= t {
		prev := 0.0
		if n > 0 {
			prev = s.samples[n-1].cum
		}
		s.samples = append(s.samples, sample{t, v, prev + v})
		return
	}
	i := s.head + sort.Search(n-s.head, func(i int) bool { return s.samples[s.head+i].t > t })
	s.edits++
	s.samples = append(s.samples, sample{})
	copy(s.samples[i+1:], s.samples[i:])
	s.samples[i] = sample{t: t, v: v}
	s.recum(i)
}

// recum recomputes the prefix sums from index i.
func (s *series) recum(i int) {
	prev := 0.0
	if i > 0 {
		prev = s.samples[i-1].cum
	}
	for ; i < len(s.samples); i++ {
		prev += s.samples[i].v
		s.samples[i].cum = prev
	}
}

// trim drops samples at or before `before` and beyond the last max. The
// dropped prefix is compacted away once it is an eighth of the slice, into
// slices sized to what is live (plus a seventh: what arrives before the
// next compaction), so a series holds little more than its live samples
// (about 27 bytes each with their sums, not the 48 of keeping up to twice
// as many), at a copy of the live samples per eighth of them dropped; the
// prefix sums restart, keeping them small.
func (s *series) trim(before float64, max int) {
	head := s.head
	for s.head < len(s.samples) && s.samples[s.head].t <= before {
		s.head++
	}
	if over := len(s.samples) - s.head - max; over > 0 {
		s.head += over
	}
	if s.head != head {
		s.win.ok = false
	}
	if s.head == 0 || 8*s.head < len(s.samples) {
		return
	}
	for _, x := range s.samples[:s.head] {
		if math.Abs(x.v) >= bigValue {
			s.big--
		}
	}
	live := len(s.samples) - s.head
	if want := live + live/7 + 8; cap(s.samples) > want+want/8 {
		samples := make([]sample, live, want)
		copy(samples, s.samples[s.head:])
		s.samples = samples
	} else {
		n := copy(s.samples, s.samples[s.head:])
		s.samples = s.samples[:n]
	}
	s.base += s.head
	s.head = 0
	s.recum(0)
}

// span returns the indexes [lo, hi) of the samples with from < t <= to.
// A window usually ends at the newest sample or after it, and holds few
// samples: its end is found without a search, and its start by looking
// back from the end (the memory a sum reads anyway) for a few samples
// before searching.
func (s *series) span(from, to float64) (lo, hi int) {
	live := s.samples[s.head:]
	hi = len(live)
	if hi > 0 && live[hi-1].t > to {
		hi = sort.Search(hi, func(i int) bool { return live[i].t > to })
	}
	lo = hi
	for lo > 0 && hi-lo < spanLookBack && live[lo-1].t > from {
		lo--
	}
	if lo > 0 && live[lo-1].t > from {
		lo = sort.Search(lo, func(i int) bool { return live[i].t > from })
	}
	return s.head + lo, s.head + hi
}

// spanLookBack is how many samples span looks at before it searches.
const spanLookBack = 8

// sum is the sum of samples[lo:hi].
func (s *series) sum(lo, hi int) float64 {
	if s.big > 0 {
		total := 0.0
		for _, x := range s.samples[lo:hi] {
			total += x.v
		}
		return total
	}
	if lo > 0 {
		return s.samples[hi-1].cum - s.samples[lo-1].cum
	}
	return s.samples[hi-1].cum
}

// Default bounds on the series kept: in all, and of one deployment.
const (
	DefaultMaxSeries              = 1_000_000
	DefaultMaxSeriesPerDeployment = 20_000
)

// keep makes the windows keep at least seconds of history from now on:
// a window that long is read (the start-up grace covers its first
// filling).
func (w *Windows) keep(seconds float64) {
	if seconds > w.Horizon {
		w.Horizon = seconds
	}
}

// NewWindows returns windows keeping horizon seconds.
func NewWindows(horizon float64) *Windows {
	return &Windows{
		Horizon: horizon, MaxSamples: 4096, DefaultTTL: 60, MaxSeries: DefaultMaxSeries, MaxSeriesPerDeployment: DefaultMaxSeriesPerDeployment,
		series: map[seriesKey]*series{}, byAlias: map[string][]*series{}, byDeploy: map[string][]*series{}, setGen: 1,
	}
}

// Now is the latest message time seen.
func (w *Windows) Now() float64 { return w.now }

// Len is the number of live series.
func (w *Windows) Len() int { return len(w.series) }

func aliases(m *Metric) []string {
	key := m.Key()
	out := []string{key}
	if m.Name != "" && m.Name != key {
		out = append(out, m.Name)
	}
	if m.Path != "" && m.Path != key {
		out = append(out, m.Path)
	}
	return out
}

// Add records a metric. Samples that arrive late (older than the window's
// start) are kept in time order. A metric that would start a series beyond
// MaxSeries or MaxSeriesPerDeployment is refused (a MalformedError of kind
// "series-limit").
func (w *Windows) Add(m *Metric) error {
	_, err := w.add(m, w.find(m))
	return err
}

// find is the series of a metric, nil while none has started.
func (w *Windows) find(m *Metric) *series {
	return w.series[seriesKey{m.DeploymentID, m.NodeName, m.Host, m.Name, m.Path}]
}

// add is Add, returning the metric's series; s is the one find gave (nil:
// none yet, started here).
func (w *Windows) add(m *Metric, s *series) (*series, error) {
	if s == nil {
		k := seriesKey{m.DeploymentID, m.NodeName, m.Host, m.Name, m.Path}
		if w.MaxSeries > 0 && len(w.series) >= w.MaxSeries {
			return nil, &MalformedError{Kind: "series-limit", Detail: fmt.Sprintf("orch keeps at most %d series; a new host or metric starts none until others expire (their ttl)", w.MaxSeries)}
		}
		if n := len(w.byDeploy[k.deployment]); w.MaxSeriesPerDeployment > 0 && n >= w.MaxSeriesPerDeployment {
			return nil, &MalformedError{Kind: "series-limit", Detail: fmt.Sprintf("deployment %s has %d series, the most orch keeps for one; a new host or metric starts none until others expire", k.deployment, n)}
		}
		s = &series{key: k, host: k.host, service: m.Service, aliases: aliases(m)}
		w.series[k] = s
		w.index(s)
	}
	w.gen++
	s.add(m.Time, m.Value)
	if m.Time > w.now {
		w.now = m.Time
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = w.DefaultTTL
	}
	if e := m.Time + ttl; e > s.expires {
		s.expires = e
	}
	// Trim history beyond the horizon and the bound.
	s.trim(w.now-w.Horizon, w.MaxSamples)
	return s, nil
}

// Expire drops the series whose ttl has passed at now.
func (w *Windows) Expire(now float64) int {
	return w.ExpireBy(func(string) float64 { return now })
}

// ExpireBy drops the series whose ttl has passed, each at its
// deployment's time.
func (w *Windows) ExpireBy(nowOf func(deployment string) float64) int {
	dropped := 0
	times := map[string]float64{}
	timeOf := func(dep string) float64 {
		now, ok := times[dep]
		if !ok {
			now = nowOf(dep)
			times[dep] = now
		}
		return now
	}
	for k, s := range w.series {
		if s.expires < timeOf(k.deployment) {
			w.gen++
			delete(w.series, k)
			s.gone = true
			w.unindex(s)
			dropped++
		}
	}
	// A percentile window not read for a horizon goes too.
	for k, st := range w.pct {
		if st.now < timeOf(k.deployment)-w.Horizon {
			delete(w.pct, k)
		}
	}
	return dropped
}

// Drop forgets every series of a deployment (it has no policies left).
func (w *Windows) Drop(deployment string) {
	w.gen++
	w.setGen++
	for k, sel := range w.sels {
		if k.deployment == deployment {
			sel.gone = true
			delete(w.sels, k)
		}
	}
	for k := range w.pct {
		if k.deployment == deployment {
			delete(w.pct, k)
		}
	}
	for _, s := range w.byDeploy[deployment] {
		delete(w.series, s.key)
		s.gone = true
		for _, a := range s.aliases {
			delete(w.byAlias, deployment+"\x00"+a)
		}
	}
	delete(w.byDeploy, deployment)
}

// unindex takes a series out of the indexes.
func (w *Windows) unindex(s *series) {
	w.setGen++
	drop := func(m map[string][]*series, key string) {
		list := slices.DeleteFunc(m[key], func(x *series) bool { return x == s })
		if len(list) == 0 {
			delete(m, key)
		} else {
			m[key] = list
		}
	}
	for _, a := range s.aliases {
		drop(w.byAlias, s.key.deployment+"\x00"+a)
	}
	drop(w.byDeploy, s.key.deployment)
}

func (w *Windows) index(s *series) {
	w.setGen++
	for _, a := range s.aliases {
		ak := s.key.deployment + "\x00" + a
		w.byAlias[ak] = append(w.byAlias[ak], s)
	}
	w.byDeploy[s.key.deployment] = append(w.byDeploy[s.key.deployment], s)
}

// Query selects the samples of a window: a deployment's series of one
// metric (or whose service matches a pattern), of some nodes, over the last
// seconds before now.
type Query struct {
	Deployment string
	Nodes      map[string]bool // nil: every node
	Metric     string
	Pattern    *regexp.Regexp // instead of Metric: match the service
	Seconds    float64
	Now        float64
	// MinHosts is how many hosts must report in the window for it to
	// count (a policy's min_hosts); fewer is no data. 0 or 1: any.
	MinHosts int
	// nodesID is Nodes' interned set (Target.query): 0, not interned,
	// keeps its reductions out of the memo.
	nodesID uint64
	// sel is the query's selection (selectionOf; nil: none, its series
	// are looked for at each read and nothing is memoized).
	sel *selection
}

// selects reports whether a query selects a series of its deployment.
func (q *Query) selects(s *series) bool {
	return (q.Nodes == nil || q.Nodes[s.key.node]) && (q.Pattern == nil || s.matches(q.Pattern))
}

// candidates are the series of q's deployment it may select: those of its
// metric, or all for a pattern.
func (w *Windows) candidates(q *Query) []*series {
	if q.Pattern != nil {
		return w.byDeploy[q.Deployment]
	}
	return w.byAlias[q.Deployment+"\x00"+q.Metric]
}

// selected is the series of q's selection, found again if series
// started or went since.
func (w *Windows) selected(q *Query) []*series {
	sel := q.sel
	if sel.gen == w.setGen {
		return sel.list
	}
	sel.list = sel.list[:0]
	for _, s := range w.candidates(q) {
		if q.selects(s) {
			sel.list = append(sel.list, s)
		}
	}
	sel.gen = w.setGen
	return sel.list
}

// each calls fn with every series of the query that has samples in the
// window, and their span [lo, hi).
func (w *Windows) each(q Query, fn func(s *series, lo, hi int)) {
	from := q.Now - q.Seconds
	w.eachSeries(q, func(s *series) {
		if lo, hi := s.span(from, q.Now); hi > lo {
			fn(s, lo, hi)
		}
	})
}

// eachSeries calls fn with each series q selects that has not gone stale.
func (w *Windows) eachSeries(q Query, fn func(s *series)) {
	var list []*series
	if q.sel != nil {
		list = w.selected(&q)
	} else {
		list = w.candidates(&q)
	}
	for _, s := range list {
		if q.sel == nil && !q.selects(s) {
			continue
		}
		if s.expires < q.Now {
			continue // stale: the source stopped reporting
		}
		fn(s)
	}
}

// matches reports whether the series' service matches re, remembering
// the answer (a series' service never changes; patterns are interned).
func (s *series) matches(re *regexp.Regexp) bool {
	for _, m := range s.matched {
		if m.re == re {
			return m.ok
		}
	}
	ok := re.MatchString(s.service)
	s.matched = append(s.matched, patternMatch{re, ok})
	return ok
}

type patternMatch struct {
	re *regexp.Regexp
	ok bool
}

// hostAgg is one host's samples in a window: how many, and their sum.
type hostAgg struct {
	n   int
	sum float64
}

// hostSet is the hosts of a window with their samples' count and sum, in
// the order their series were first seen (so the mean of their means adds
// them in the same order every time: the same windows give the same value,
// to the last bit, live and in a replay). A few hosts are found by a scan;
// beyond smallHosts, an index by name takes over.
type hostSet struct {
	hosts []hostEntry
	index map[string]int
}

type hostEntry struct {
	host string
	hostAgg
}

// smallHosts is how many hosts a window's set scans before it indexes them.
const smallHosts = 8

// add counts a series' samples to its host.
func (hs *hostSet) add(host string, n int, sum float64) {
	i := -1
	if hs.index != nil {
		if j, ok := hs.index[host]; ok {
			i = j
		}
	} else {
		for j := range hs.hosts {
			if hs.hosts[j].host == host {
				i = j
				break
			}
		}
	}
	if i < 0 {
		i = len(hs.hosts)
		hs.hosts = append(hs.hosts, hostEntry{host: host})
		if hs.index != nil {
			hs.index[host] = i
		} else if len(hs.hosts) > smallHosts {
			hs.index = make(map[string]int, 2*len(hs.hosts))
			for j, h := range hs.hosts {
				hs.index[h.host] = j
			}
		}
	}
	hs.hosts[i].n += n
	hs.hosts[i].sum += sum
}

// hostAggs returns, per host, the count and sum of its samples in the
// window (a host's series of several nodes or metrics pooled, as
// scale.clj's by-host grouping does).
func (w *Windows) hostAggs(q Query, hs *hostSet) *hostSet {
	hs.hosts, hs.index = hs.hosts[:0], nil
	from := q.Now - q.Seconds
	w.eachSeries(q, func(s *series) {
		if n, sum := s.window(from, q.Now); n > 0 {
			hs.add(s.host, n, sum)
		}
	})
	return hs
}

func meanOfHostMeans(hs *hostSet) float64 {
	total := 0.0
	for _, h := range hs.hosts {
		total += h.sum / float64(h.n)
	}
	return total / float64(len(hs.hosts))
}

// enoughHosts reports whether at least q.MinHosts hosts report in the
// window.
func (w *Windows) enoughHosts(q Query) bool {
	return len(w.hostAggs(q, &w.hosts).hosts) >= q.MinHosts
}

// MeanHosts is scale.clj's pair in one pass over the window: the mean of
// the hosts' means, and how many hosts report.
func (w *Windows) MeanHosts(q Query) (mean, hosts float64, ok bool) {
	if q.sel == nil {
		q.sel = w.selectionOf(&q, nil)
	}
	k, m, seen := q.sel.remembered(meanHostsFn, &q, 0)
	if !seen {
		m.v, m.hosts, m.ok = w.meanHosts(q)
		q.sel.keep(k, m)
	}
	return m.v, m.hosts, m.ok
}

func (w *Windows) meanHosts(q Query) (mean, hosts float64, ok bool) {
	hs := w.hostAggs(q, &w.hosts)
	if len(hs.hosts) == 0 || len(hs.hosts) < q.MinHosts {
		return math.NaN(), 0, false
	}
	return meanOfHostMeans(hs), float64(len(hs.hosts)), true
}

// Reduce computes fn over the window: mean is the mean across hosts of each
// host's mean (as Riemann's scale.clj), hosts counts the hosts reporting,
// min/max/sum/count/percentile/last are over all samples, rate is the sum
// per second, ewma smooths the samples in time order. ok is false when the
// window has no samples: no data is never a zero. mean, hosts, sum, rate
// and count read prefix sums; min, max and last scan no more than the
// window; ewma merges its series; percentile keeps each window's values in
// order, moved on by what entered and left it (percentile).
func (w *Windows) Reduce(fn string, q Query, arg float64) (float64, bool) {
	if fn == "mean" || fn == "hosts" {
		mean, hosts, ok := w.MeanHosts(q)
		if fn == "hosts" {
			return hosts, ok
		}
		return mean, ok
	}
	if q.sel == nil {
		q.sel = w.selectionOf(&q, nil)
	}
	k, m, seen := q.sel.remembered(fn, &q, arg)
	if seen {
		return m.v, m.ok
	}
	v, ok := w.reduce(fn, q, arg)
	q.sel.keep(k, memoized{v: v, ok: ok})
	return v, ok
}

// reduce computes every reduction but mean and hosts (MeanHosts).
func (w *Windows) reduce(fn string, q Query, arg float64) (float64, bool) {
	if q.MinHosts > 1 && !w.enoughHosts(q) {
		return math.NaN(), false
	}
	switch fn {
	case "sum", "rate", "count":
		n, sum := 0, 0.0
		w.each(q, func(s *series, lo, hi int) {
			n += hi - lo
			sum += s.sum(lo, hi)
		})
		switch {
		case n == 0:
			return math.NaN(), false
		case fn == "count":
			return float64(n), true
		case fn == "rate":
			return sum / q.Seconds, true
		}
		return sum, true
	case "min", "max":
		best, seen := 0.0, false
		w.each(q, func(s *series, lo, hi int) {
			for _, x := range s.samples[lo:hi] {
				if !seen || fn == "min" && x.v < best || fn == "max" && x.v > best {
					best, seen = x.v, true
				}
			}
		})
		if !seen {
			return math.NaN(), false
		}
		return best, true
	case "last":
		var last sample
		seen := false
		w.each(q, func(s *series, lo, hi int) {
			if x := s.samples[hi-1]; !seen || x.t > last.t {
				last, seen = x, true
			}
		})
		if !seen {
			return math.NaN(), false
		}
		return last.v, true
	}
	if fn == "ewma" {
		return w.ewma(q, arg)
	}
	if fn == "percentile" {
		if w.bySort || q.Nodes != nil && q.nodesID == 0 {
			return w.percentileBySort(q, arg)
		}
		return w.percentile(q, arg)
	}
	return math.NaN(), false
}

// ewma smooths the window's samples in time order. Each series is in time
// order already, so they are merged, not sorted; of samples at the same
// time, the earlier series' comes first.
func (w *Windows) ewma(q Query, alpha float64) (float64, bool) {
	var runs [][]sample
	w.each(q, func(s *series, lo, hi int) { runs = append(runs, s.samples[lo:hi]) })
	v, seen := 0.0, false
	for {
		best := -1
		for i, r := range runs {
			if len(r) > 0 && (best < 0 || r[0].t < runs[best][0].t) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		x := runs[best][0]
		runs[best] = runs[best][1:]
		if !seen {
			v, seen = x.v, true
		} else {
			v = alpha*x.v + (1-alpha)*v
		}
	}
	if !seen {
		return math.NaN(), false
	}
	return v, true
}
