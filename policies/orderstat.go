package policies

import (
	"math"
	"regexp"
	"slices"
	"sort"
)

// orderStat is a multiset of numbers that answers "the k-th smallest"
// without sorting: sorted blocks of at most 2*orderBlock values, so an
// insert or a removal moves at most one block's values and a rank walks
// the blocks' lengths. A window of 36,000 samples (an hour of ten hosts
// at one a second) is about 140 blocks.
type orderStat struct {
	blocks [][]float64
	n      int
}

// orderBlock is a block's length after a split; blocks split beyond twice
// that.
const orderBlock = 256

// block returns the index of the first block whose largest value is at
// least v (the block v belongs in), or the last block.
func (o *orderStat) block(v float64) int {
	i := sort.Search(len(o.blocks), func(i int) bool { b := o.blocks[i]; return b[len(b)-1] >= v })
	return min(i, len(o.blocks)-1)
}

// insert adds v.
func (o *orderStat) insert(v float64) {
	o.n++
	if len(o.blocks) == 0 {
		o.blocks = append(o.blocks, append(make([]float64, 0, 2*orderBlock+1), v))
		return
	}
	i := o.block(v)
	b := o.blocks[i]
	j := sort.SearchFloat64s(b, v)
	b = slices.Insert(b, j, v)
	if len(b) <= 2*orderBlock {
		o.blocks[i] = b
		return
	}
	right := append(make([]float64, 0, 2*orderBlock+1), b[orderBlock:]...)
	o.blocks[i] = b[:orderBlock]
	o.blocks = slices.Insert(o.blocks, i+1, right)
}

// remove takes one v out, reporting whether there was one.
func (o *orderStat) remove(v float64) bool {
	if len(o.blocks) == 0 {
		return false
	}
	i := o.block(v)
	b := o.blocks[i]
	j := sort.SearchFloat64s(b, v)
	if j == len(b) || b[j] != v {
		return false
	}
	o.n--
	b = slices.Delete(b, j, j+1)
	if len(b) == 0 {
		o.blocks = slices.Delete(o.blocks, i, i+1)
		return true
	}
	o.blocks[i] = b
	// Keep blocks from thinning out: a small one joins its neighbour.
	if len(b) < orderBlock/4 && i+1 < len(o.blocks) && len(b)+len(o.blocks[i+1]) <= 2*orderBlock {
		o.blocks[i] = append(b, o.blocks[i+1]...)
		o.blocks = slices.Delete(o.blocks, i+1, i+2)
	}
	return true
}

// reset empties the set and fills it with vals (sorted here).
func (o *orderStat) reset(vals []float64) {
	clear(o.blocks)
	o.blocks, o.n = o.blocks[:0], len(vals)
	sort.Float64s(vals)
	for len(vals) > 0 {
		k := min(len(vals), orderBlock)
		o.blocks = append(o.blocks, append(make([]float64, 0, 2*orderBlock+1), vals[:k]...))
		vals = vals[k:]
	}
}

// at returns the k-th smallest value (from 0).
func (o *orderStat) at(k int) float64 {
	for _, b := range o.blocks {
		if k < len(b) {
			return b[k]
		}
		k -= len(b)
	}
	return math.NaN()
}

// percentile is the p-th percentile (0 to 100) with linear interpolation
// between the ranks around it, as of the sorted values.
func (o *orderStat) percentile(p float64) float64 { return interpolated(o.n, p, o.at) }

// interpolated is the p-th percentile of n ordered values, at(k) the k-th
// smallest: linear between the two ranks around it.
func interpolated(n int, p float64, at func(k int) float64) float64 {
	rank := p / 100 * float64(n-1)
	lo, hi := int(math.Floor(rank)), int(math.Ceil(rank))
	a := at(lo)
	if hi == lo {
		return a
	}
	return a + (at(hi)-a)*(rank-float64(lo))
}

// pctKey is a percentile's window, whatever its time and percent.
type pctKey struct {
	deployment, metric string
	pattern            *regexp.Regexp
	nodes              uint64
	seconds            float64
}

// pctState is a window's values in order, and per series of the window
// the samples they hold (by sample number: series.base+index) and their
// values in time order, as of its time now.
type pctState struct {
	set orderStat
	cur []pctCursor
	now float64
}

type pctCursor struct {
	s      *series
	lo, hi int
	edits  uint32
	// fifo[head:] are the values of samples lo to hi: what leaves the
	// window is taken out by value, whatever the series has dropped.
	fifo []float64
	head int
}

type pctSpan struct {
	s      *series
	lo, hi int
}

// percentile is the p-th percentile of the window's samples, exact: the
// window's values are kept in order between reads, and each read adds the
// samples that entered the window and removes those that left it since
// the last one, so a read costs what changed, not a copy and a sort of
// the window. A change it cannot follow (a series entering or leaving the
// window, a late sample renumbering a series, time going back) fills it
// again from the window (counted in pctRefills).
func (w *Windows) percentile(q Query, p float64) (float64, bool) {
	spans := w.pctSpans[:0]
	w.each(q, func(s *series, lo, hi int) {
		spans = append(spans, pctSpan{s: s, lo: s.base + lo, hi: s.base + hi})
	})
	w.pctSpans = spans[:0]
	k := pctKey{deployment: q.Deployment, metric: q.Metric, pattern: q.Pattern, nodes: q.nodesID, seconds: q.Seconds}
	st := w.pct[k]
	if len(spans) == 0 {
		if st != nil {
			delete(w.pct, k)
		}
		return math.NaN(), false
	}
	if st == nil {
		if w.pct == nil {
			w.pct = map[pctKey]*pctState{}
		}
		st = &pctState{}
		w.pct[k] = st
	}
	if !st.advance(spans, q.Now) {
		w.pctRefills++
		w.pctValues = st.refill(spans, w.pctValues[:0])
	}
	st.now = q.Now
	return st.set.percentile(p), true
}

// advance moves the values on to spans, reporting false when it cannot
// (the caller refills them).
func (st *pctState) advance(spans []pctSpan, now float64) bool {
	if len(spans) != len(st.cur) || now < st.now || st.set.n == 0 {
		return false
	}
	for i, n := range spans {
		c := &st.cur[i]
		s := n.s
		if c.s != s || c.edits != s.edits || n.lo < c.lo || n.hi < c.hi {
			return false
		}
		for range min(n.lo, c.hi) - c.lo {
			if !st.set.remove(c.fifo[c.head]) {
				return false
			}
			c.head++
		}
		if c.head > 64 && 2*c.head > len(c.fifo) {
			c.fifo = c.fifo[:copy(c.fifo, c.fifo[c.head:])]
			c.head = 0
		}
		for j := max(c.hi, n.lo); j < n.hi; j++ {
			v := s.samples[j-s.base].v
			st.set.insert(v)
			c.fifo = append(c.fifo, v)
		}
		c.lo, c.hi = n.lo, n.hi
	}
	return true
}

// refill fills the values from spans, with vals as scratch (returned
// emptied, for the next).
func (st *pctState) refill(spans []pctSpan, vals []float64) []float64 {
	if cap(st.cur) < len(spans) {
		st.cur = make([]pctCursor, len(spans))
	}
	st.cur = st.cur[:len(spans)]
	for i, n := range spans {
		c := &st.cur[i]
		c.s, c.lo, c.hi, c.edits, c.head = n.s, n.lo, n.hi, n.s.edits, 0
		c.fifo = c.fifo[:0]
		for _, x := range n.s.samples[n.lo-n.s.base : n.hi-n.s.base] {
			c.fifo = append(c.fifo, x.v)
		}
		vals = append(vals, c.fifo...)
	}
	st.set.reset(vals)
	return vals[:0]
}

// percentileBySort is percentile by copying and sorting the window (the
// way before it; the benchmarks' and the differential tests' reference).
func (w *Windows) percentileBySort(q Query, p float64) (float64, bool) {
	var vals []float64
	w.each(q, func(s *series, lo, hi int) {
		for _, x := range s.samples[lo:hi] {
			vals = append(vals, x.v)
		}
	})
	if len(vals) == 0 {
		return math.NaN(), false
	}
	sort.Float64s(vals)
	return interpolated(len(vals), p, func(k int) float64 { return vals[k] }), true
}
