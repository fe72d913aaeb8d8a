package policies

import (
	"math"
	"regexp"
	"sort"
	"sync"
)

// Windows keeps the recent samples of every series (deployment, node, host,
// metric), with time taken from the messages. Memory is bounded: samples
// older than Horizon go, a series keeps at most MaxSamples, and a series
// that stops reporting expires after its ttl (as Riemann's index).
type Windows struct {
	Horizon    float64 // seconds of history kept (the longest window used)
	MaxSamples int
	DefaultTTL float64

	series   map[seriesKey]*series
	byAlias  map[string][]*series // deployment \x00 alias -> series
	byDeploy map[string][]*series
	now      float64
}

type seriesKey struct {
	deployment, node, host, metric string
}

type sample struct{ t, v float64 }

type series struct {
	key     seriesKey
	service string
	aliases []string // the names a window may use for it: name, path, name.path
	samples []sample // in time order
	expires float64
}

// NewWindows returns windows keeping horizon seconds.
func NewWindows(horizon float64) *Windows {
	return &Windows{
		Horizon: horizon, MaxSamples: 4096, DefaultTTL: 60,
		series: map[seriesKey]*series{}, byAlias: map[string][]*series{}, byDeploy: map[string][]*series{},
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
// start) are kept in time order.
func (w *Windows) Add(m *Metric) {
	k := seriesKey{m.DeploymentID, m.NodeName, m.Host, m.Key()}
	s := w.series[k]
	if s == nil {
		s = &series{key: k, service: m.Service, aliases: aliases(m)}
		w.series[k] = s
		w.index(s)
	}
	n := len(s.samples)
	if n == 0 || s.samples[n-1].t <= m.Time {
		s.samples = append(s.samples, sample{m.Time, m.Value})
	} else {
		i := sort.Search(n, func(i int) bool { return s.samples[i].t > m.Time })
		s.samples = append(s.samples, sample{})
		copy(s.samples[i+1:], s.samples[i:])
		s.samples[i] = sample{m.Time, m.Value}
	}
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
	cut := 0
	for cut < len(s.samples) && s.samples[cut].t <= w.now-w.Horizon {
		cut++
	}
	if over := len(s.samples) - cut - w.MaxSamples; over > 0 {
		cut += over
	}
	if cut > 0 {
		s.samples = append(s.samples[:0], s.samples[cut:]...)
	}
}

// Expire drops the series whose ttl has passed at now.
func (w *Windows) Expire(now float64) int {
	dropped := 0
	for k, s := range w.series {
		if s.expires < now {
			delete(w.series, k)
			dropped++
		}
	}
	if dropped > 0 {
		w.reindex()
	}
	return dropped
}

func (w *Windows) reindex() {
	w.byAlias = map[string][]*series{}
	w.byDeploy = map[string][]*series{}
	for _, s := range w.series {
		w.index(s)
	}
}

func (w *Windows) index(s *series) {
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
}

// hostSamples returns, per host, the samples in the window.
func (w *Windows) hostSamples(q Query, buf map[string][]sample) map[string][]sample {
	for k := range buf {
		delete(buf, k)
	}
	var list []*series
	if q.Pattern != nil {
		list = w.byDeploy[q.Deployment]
	} else {
		list = w.byAlias[q.Deployment+"\x00"+q.Metric]
	}
	from := q.Now - q.Seconds
	for _, s := range list {
		if q.Nodes != nil && !q.Nodes[s.key.node] {
			continue
		}
		if q.Pattern != nil && !q.Pattern.MatchString(s.service) {
			continue
		}
		if s.expires < q.Now {
			continue // stale: the source stopped reporting
		}
		i := sort.Search(len(s.samples), func(i int) bool { return s.samples[i].t > from })
		for ; i < len(s.samples) && s.samples[i].t <= q.Now; i++ {
			buf[s.key.host] = append(buf[s.key.host], s.samples[i])
		}
	}
	return buf
}

func meanOfHostMeans(hosts map[string][]sample) float64 {
	total := 0.0
	for _, ss := range hosts {
		sum := 0.0
		for _, s := range ss {
			sum += s.v
		}
		total += sum / float64(len(ss))
	}
	return total / float64(len(hosts))
}

// MeanHosts is scale.clj's pair in one pass over the window: the mean of
// the hosts' means, and how many hosts report.
func (w *Windows) MeanHosts(q Query) (mean, hosts float64, ok bool) {
	buf := bufPool.Get().(map[string][]sample)
	defer bufPool.Put(buf)
	hs := w.hostSamples(q, buf)
	if len(hs) == 0 {
		return math.NaN(), 0, false
	}
	return meanOfHostMeans(hs), float64(len(hs)), true
}

var bufPool = sync.Pool{New: func() any { return map[string][]sample{} }}

// Reduce computes fn over the window: mean is the mean across hosts of each
// host's mean (as Riemann's scale.clj), hosts counts the hosts reporting,
// min/max/sum/count/percentile/last are over all samples, rate is the sum
// per second, ewma smooths the samples in time order. ok is false when the
// window has no samples: no data is never a zero.
func (w *Windows) Reduce(fn string, q Query, arg float64) (float64, bool) {
	buf := bufPool.Get().(map[string][]sample)
	defer bufPool.Put(buf)
	hosts := w.hostSamples(q, buf)
	if len(hosts) == 0 {
		return math.NaN(), false
	}
	switch fn {
	case "hosts":
		return float64(len(hosts)), true
	case "mean":
		return meanOfHostMeans(hosts), true
	}
	var all []sample
	for _, ss := range hosts {
		all = append(all, ss...)
	}
	switch fn {
	case "min", "max":
		best := all[0].v
		for _, s := range all[1:] {
			if fn == "min" && s.v < best || fn == "max" && s.v > best {
				best = s.v
			}
		}
		return best, true
	case "sum", "rate":
		sum := 0.0
		for _, s := range all {
			sum += s.v
		}
		if fn == "rate" {
			return sum / q.Seconds, true
		}
		return sum, true
	case "count":
		return float64(len(all)), true
	case "last", "ewma":
		sort.Slice(all, func(i, j int) bool { return all[i].t < all[j].t })
		if fn == "last" {
			return all[len(all)-1].v, true
		}
		v := all[0].v
		for _, s := range all[1:] {
			v = arg*s.v + (1-arg)*v
		}
		return v, true
	case "percentile":
		vals := make([]float64, len(all))
		for i, s := range all {
			vals[i] = s.v
		}
		sort.Float64s(vals)
		rank := arg / 100 * float64(len(vals)-1)
		lo := int(math.Floor(rank))
		hi := int(math.Ceil(rank))
		return vals[lo] + (vals[hi]-vals[lo])*(rank-float64(lo)), true
	}
	return math.NaN(), false
}
