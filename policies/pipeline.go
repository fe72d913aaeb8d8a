package policies

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Pipeline is the in-process path of a metric: decode, add to the windows,
// evaluate the policies of the message's deployment, and return their
// decisions as values. It does no I/O and takes no locks: one goroutine
// (the runner's) owns it, and the runner acts on what it returns.
type Pipeline struct {
	Windows *Windows
	// Malformed counts refused messages by kind.
	Malformed map[string]int
	// Evaluations counts policy evaluations; Unrouted the metrics of
	// deployments with no policies, dropped.
	Evaluations, Unrouted int64
	// strings interns the decoded messages' strings; metrics is the
	// buffer a message of several values is decoded into.
	strings interner
	metrics []Metric
	// vals holds the Values of the decisions the last call returned,
	// reused by the next call (a decision held back at every metric
	// allocates nothing).
	vals []Reading

	// Now is the wall clock (nil: none; a replay runs on event time alone).
	// With it, each deployment's clock runs on from its newest metric's
	// time, and MaxSkew (seconds, 0: no limit) refuses a metric whose time
	// is that far ahead of it, so a forged timestamp moves no clock.
	Now     func() time.Time
	MaxSkew float64

	instances map[string][]*Instance // by deployment
	// gen counts the changes to instances: a series' readers found at an
	// older one are found again.
	gen    uint64
	clocks map[string]*clock   // by deployment
	shared map[string]*float64 // scale.clj's shared cooldown flag, by deployment
	// failing are the sources in error, by deployment ("" for all) and
	// source: a missing-data decision names them.
	failing map[string]map[string]string
}

// clock is a deployment's event time: its newest metric's, and the wall
// time it came at.
type clock struct {
	event float64
	wall  time.Time
}

// wallClock is the wall clock read through the monotonic one: one clock
// read a metric, where time.Now makes two. It takes the wall time again
// every second, so a step of the host's clock is followed within one.
// Safe for concurrent use.
type wallClock struct {
	// offset is the wall time (Unix ns) less the monotonic time since
	// clockStart at the last sync, made at synced.
	offset, synced atomic.Int64
}

var clockStart = time.Now()

func (c *wallClock) Now() time.Time {
	mono := int64(time.Since(clockStart))
	if synced := c.synced.Load(); synced == 0 || mono-synced >= int64(time.Second) || mono < synced {
		t := time.Now()
		mono = int64(t.Sub(clockStart))
		c.offset.Store(t.UnixNano() - mono)
		c.synced.Store(max(mono, 1))
		return t
	}
	return time.Unix(0, c.offset.Load()+mono)
}

// NewPipeline returns a pipeline keeping horizon seconds of history.
func NewPipeline(horizon float64) *Pipeline {
	return &Pipeline{Windows: NewWindows(horizon), Malformed: map[string]int{}, instances: map[string][]*Instance{},
		clocks: map[string]*clock{}, Now: new(wallClock).Now, gen: 1}
}

// Add registers a policy instance of a deployment. The windows keep
// history as long as its longest window (an hour at least).
func (p *Pipeline) Add(deployment string, in *Instance) {
	if w, ok := in.Eval.(windowed); ok {
		p.Windows.keep(w.Window())
	}
	if in.Shared {
		if p.shared == nil {
			p.shared = map[string]*float64{}
		}
		if p.shared[deployment] == nil {
			p.shared[deployment] = new(float64)
		}
		in.shared = p.shared[deployment]
	}
	p.instances[deployment] = append(p.instances[deployment], in)
	p.gen++
}

// readers are the policies of list (a deployment's) that read a window a
// metric of s can change, in list's order; found once per series and
// change of policies.
func (p *Pipeline) readers(s *series, list []*Instance) []*Instance {
	if s.readersGen == p.gen {
		return s.readers
	}
	s.readers = s.readers[:0]
	for _, in := range list {
		if in.reads(s) {
			s.readers = append(s.readers, in)
		}
	}
	s.readersGen = p.gen
	return s.readers
}

// Ingest decodes one message body, applies it and appends its policies'
// decisions to out. A malformed message is counted and its error returned;
// nothing else happens with it. The decisions' Values are valid until the
// pipeline's next call: a caller keeping one copies them (Values.Clone).
func (p *Pipeline) Ingest(body []byte, routingKey string, out []Decision) ([]Decision, error) {
	p.vals = p.vals[:0]
	if first(body) == '{' {
		// Diamond's: one metric, whose identity (its strings, its
		// series) is mostly known.
		p.metrics = append(p.metrics[:0], Metric{})
		id, err := decodeInto(body, routingKey, &p.strings, &p.metrics[0])
		if err != nil {
			if kind, ok := IsMalformed(err); ok {
				p.Malformed[kind]++
			}
			return out, err
		}
		return p.apply(&p.metrics[0], out, id)
	}
	// Several (collectd's). Values skipped or refused are counted; the
	// message is refused only when none applied.
	ms, skipped, err := decodeAll(body, routingKey, p.metrics[:0], &p.strings)
	p.metrics = ms[:0]
	if err != nil {
		if kind, ok := IsMalformed(err); ok {
			p.Malformed[kind]++
		}
		return out, err
	}
	p.Malformed["value"] += skipped
	var firstErr error
	applied := 0
	for i := range ms {
		var aerr error
		if out, aerr = p.apply(&ms[i], out, nil); aerr != nil {
			if firstErr == nil {
				firstErr = aerr
			}
			continue
		}
		applied++
	}
	if applied == 0 && firstErr != nil {
		return out, firstErr
	}
	return out, nil
}

// Apply adds a decoded metric to the windows, evaluates its deployment's
// policies at its time, and appends their decisions to out; each carries
// the metric as its triggering event. Their Values are valid until the
// pipeline's next call, as Ingest's.
func (p *Pipeline) Apply(m *Metric, out []Decision) ([]Decision, error) {
	p.vals = p.vals[:0]
	return p.apply(m, out, nil)
}

// apply is Apply; id is the metric's identity (nil: none), which keeps
// its series.
func (p *Pipeline) apply(m *Metric, out []Decision, id *ident) ([]Decision, error) {
	if err := valueProblem(m.Value); err != nil {
		// Decode refuses these; a poller's value is checked here.
		p.Malformed[err.Kind]++
		return out, err
	}
	var wall time.Time
	if p.Now != nil {
		wall = p.Now()
		if p.MaxSkew > 0 && m.Time > Seconds(wall)+p.MaxSkew {
			p.Malformed["time"]++
			return out, &MalformedError{Kind: "time", Detail: fmt.Sprintf("time %.0f is %.0fs ahead of this host's clock; at most %gs is allowed (--max-clock-skew)",
				m.Time, m.Time-Seconds(wall), p.MaxSkew)}
		}
	}
	// A series whose readers are current belongs to a deployment with
	// policies, which it knows: one lookup for the metric, none when its
	// identity has its series.
	var s *series
	if id != nil && id.w == p.Windows && id.s != nil && !id.s.gone {
		s = id.s
	} else {
		s = p.Windows.find(m)
	}
	var list []*Instance
	if s == nil || s.readersGen != p.gen {
		var ok bool
		if list, ok = p.instances[m.DeploymentID]; !ok {
			// No policy reads it: keeping it would only grow memory (a
			// typo'd routing key, a deployment undeployed).
			p.Unrouted++
			return out, nil
		}
	}
	s, err := p.Windows.add(m, s)
	if err != nil {
		if kind, ok := IsMalformed(err); ok {
			p.Malformed[kind]++
		}
		return out, err
	}
	if id != nil {
		id.w, id.s = p.Windows, s
	}
	c := s.clock
	if c == nil {
		// Kept by the series: Remove forgets the clock with the series.
		if c = p.clocks[m.DeploymentID]; c == nil {
			c = &clock{}
			p.clocks[m.DeploymentID] = c
		}
		s.clock = c
	}
	if m.Time > c.event {
		c.event, c.wall = m.Time, wall
	}
	sources := p.failingSources(m.DeploymentID)
	for _, in := range p.readers(s, list) {
		p.Evaluations++
		first := len(out)
		var err error
		if out, err = in.step(p.Windows, m.Time, sources, out); err != nil {
			return out, fmt.Errorf("policy %s/%s: %w", m.DeploymentID, in.Name, err)
		}
		for i := first; i < len(out); i++ {
			out[i].Deployment, out[i].event = m.DeploymentID, m
			out[i].Values = p.keep(out[i].Values)
		}
	}
	return out, nil
}

// keep copies a decision's values (its evaluator's, overwritten by its
// next evaluation) into the pipeline's buffer.
func (p *Pipeline) keep(vs Values) Values {
	if len(vs) == 0 {
		return nil
	}
	start := len(p.vals)
	p.vals = append(p.vals, vs...)
	return p.vals[start:len(p.vals):len(p.vals)]
}

// Tick looks for missing data in every policy at now (event time), since a
// source that stopped sends nothing that would evaluate them, and appends
// the decisions (with no triggering event) to out.
func (p *Pipeline) Tick(now float64, out []Decision) ([]Decision, error) {
	p.Windows.Expire(now)
	return p.tick(func(string) float64 { return now }, out)
}

// TickWall is Tick with each deployment at its own clock at wall: its
// newest metric's time plus the wall time since it came (the wall time
// for a deployment no metric has reached yet). One deployment's producers
// never move another's clock.
func (p *Pipeline) TickWall(wall time.Time, out []Decision) ([]Decision, error) {
	nowOf := func(dep string) float64 { return p.ClockAt(dep, wall) }
	p.Windows.ExpireBy(nowOf)
	return p.tick(nowOf, out)
}

// Remove forgets a deployment: its policies, windows and clock.
func (p *Pipeline) Remove(deployment string) {
	delete(p.instances, deployment)
	p.gen++
	delete(p.shared, deployment)
	delete(p.clocks, deployment)
	delete(p.failing, deployment)
	p.Windows.Drop(deployment)
}

// ClockAt is a deployment's event time at wall.
func (p *Pipeline) ClockAt(deployment string, wall time.Time) float64 {
	c := p.clocks[deployment]
	if c == nil || c.wall.IsZero() {
		return Seconds(wall)
	}
	return c.event + wall.Sub(c.wall).Seconds()
}

func (p *Pipeline) tick(nowOf func(deployment string) float64, out []Decision) ([]Decision, error) {
	for dep, list := range p.instances {
		now := nowOf(dep)
		sources := p.failingSources(dep)
		for _, in := range list {
			first := len(out)
			var err error
			if out, err = in.check(p.Windows, now, sources, out); err != nil {
				return out, fmt.Errorf("policy %s/%s: %w", dep, in.Name, err)
			}
			for i := first; i < len(out); i++ {
				out[i].Deployment = dep
			}
		}
	}
	return out, nil
}

// SetSource records a metric source of a deployment ("" for all of them)
// as failing (err non-empty) or working again (err ""), so missing-data
// decisions say why the data is missing.
func (p *Pipeline) SetSource(deployment, source, err string) {
	if err == "" {
		delete(p.failing[deployment], source)
		return
	}
	if p.failing == nil {
		p.failing = map[string]map[string]string{}
	}
	if p.failing[deployment] == nil {
		p.failing[deployment] = map[string]string{}
	}
	p.failing[deployment][source] = err
}

// failingSources describes the failing sources of a deployment.
func (p *Pipeline) failingSources(deployment string) string {
	if len(p.failing[deployment]) == 0 && len(p.failing[""]) == 0 {
		return ""
	}
	var parts []string
	for _, dep := range []string{"", deployment} {
		for _, src := range slices.Sorted(maps.Keys(p.failing[dep])) {
			parts = append(parts, src+" failing: "+p.failing[dep][src])
		}
	}
	return strings.Join(parts, "; ")
}
