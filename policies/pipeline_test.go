package policies

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

func TestPipelineCountsMalformedAndDecides(t *testing.T) {
	pols := resolvePolicies(t, scaleCLJ)
	p := NewPipeline(600)
	in, err := NewInstance(Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}, pols["builtin_up"])
	if err != nil {
		t.Fatal(err)
	}
	p.Add("shop", in)
	var fired []Decision
	for _, body := range []string{`{bad`, `{"metric":"x"}`, `{"metric":1}`} {
		if ds, err := p.Ingest([]byte(body), "shop", nil); err == nil || len(ds) != 0 {
			t.Errorf("%s accepted: %v", body, ds)
		}
	}
	if p.Malformed["json"] != 1 || p.Malformed["type"] != 1 || p.Malformed["missing"] != 1 {
		t.Errorf("malformed counts %v", p.Malformed)
	}
	body := `{"node_name":"web","node_id":"web_1","name":"cpu","path":"total","metric":95,"host":"h1","time":%d,"service":"shop.web.web_1.cpu.total"}`
	for s := 0; s < 5; s++ {
		ds, err := p.Ingest([]byte(fmt.Sprintf(body, 1700000000+s)), "shop", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			if d.Deployment != "shop" || d.event == nil || d.event.Time != float64(1700000000+s) {
				t.Errorf("decision %+v does not carry its deployment and triggering metric", d)
			}
			if d.Fired {
				fired = append(fired, d)
			}
		}
	}
	if len(fired) != 1 || fired[0].Values.Map()["value"] != 95 || fired[0].Values.Map()["hosts"] != 1 {
		t.Errorf("fired %+v, want one scale-up (then cooldown)", fired)
	}
}

// BenchmarkPipeline: decode, window and evaluate with 1,000 policies (target
// at least 300,000 metrics/s per core). Policies are spread over
// deployments; each message goes to one deployment's policies; half of them
// are scale.clj written in HCL, compiled (the default) or left to HCL's
// interpreter, side by side. Every policy reads the one metric (the worst
// case), or (/10metrics) policy i of a deployment reads metric i of ten,
// so a metric evaluates one policy of ten. x-decode is the cost per metric
// as a multiple of decoding it, measured in the same run over the same
// messages.
func BenchmarkPipeline1000Policies(b *testing.B) {
	for _, shape := range []struct{ deployments, perDeployment, metrics int }{{1000, 1, 1}, {100, 10, 1}, {100, 10, 10}} {
		for _, mode := range []string{"compiled", "interpreted"} {
			name := fmt.Sprintf("%dx%d/%s", shape.deployments, shape.perDeployment, mode)
			if shape.metrics > 1 {
				name = fmt.Sprintf("%dx%d/%dmetrics/%s", shape.deployments, shape.perDeployment, shape.metrics, mode)
			}
			b.Run(name, func(b *testing.B) {
				benchPipeline(b, shape.deployments, shape.perDeployment, shape.metrics, mode == "interpreted")
			})
		}
	}
}

// BenchmarkPipelineIngest: the same pipelines and messages, Ingest alone
// (no decode floor between its chunks): what hack/pipeline-cost.sh counts
// under callgrind, where timing means nothing but instructions and cache
// misses are exact.
func BenchmarkPipelineIngest(b *testing.B) {
	for _, shape := range []struct{ deployments, perDeployment int }{{1000, 1}, {100, 10}} {
		b.Run(fmt.Sprintf("%dx%d", shape.deployments, shape.perDeployment), func(b *testing.B) {
			benchIngest(b, shape.deployments, shape.perDeployment, 1, false, false)
		})
	}
}

func benchPipeline(b *testing.B, deployments, perDeployment, metrics int, interpret bool) {
	benchIngest(b, deployments, perDeployment, metrics, interpret, true)
}

// benchIngest times Ingest over pre-encoded messages; floors: with the
// decode floor timed between its chunks (x-decode).
func benchIngest(b *testing.B, deployments, perDeployment, metrics int, interpret, floors bool) {
	pols := resolvePolicies(&testing.T{}, scaleCLJ)
	p := NewPipeline(60)
	for d := 0; d < deployments; d++ {
		dep := fmt.Sprintf("dep%d", d)
		for i := 0; i < perDeployment; i++ {
			pol := pols["builtin_up"]
			if i%2 == 1 || perDeployment == 1 && d%2 == 1 {
				pol = pols["hcl_up"]
			}
			if metrics > 1 {
				pol = withSelector(pol, fmt.Sprintf("[.]cpu%d[.]", i%metrics))
			}
			in, err := NewInstance(Target{Deployment: dep}, pol)
			if err != nil {
				b.Fatal(err)
			}
			if interpret {
				in.Eval = interpreted(in.Eval)
			}
			p.Add(dep, in)
		}
	}
	// Pre-encoded messages, event time only moving forward: 3 hosts per
	// deployment, each deployment reporting once a second. They are kept
	// outside Go's heap (offHeap), so the heap is what a server's is.
	n := b.N
	deps := make([]string, deployments)
	for d := range deps {
		deps[d] = fmt.Sprintf("dep%d", d)
	}
	var encoded []byte
	ends := make([]int, n)
	keys := make([]string, n) // each its deployment's one string
	for i := range n {
		dep := deps[i%deployments]
		keys[i] = dep
		metric := "cpu"
		if metrics > 1 {
			metric = fmt.Sprintf("cpu%d", i/deployments%metrics)
		}
		encoded = fmt.Appendf(encoded, `{"node_id":"web_1","node_name":"web","deployment_id":%q,"name":%q,"path":"total","metric":%d,"unit":"percent","type":"GAUGE","host":"10.0.0.%d","service":"%s.web.web_1.%s.total","time":%d}`,
			dep, metric, 40+i%50, i%3, dep, metric, 1700000000+i/deployments)
		ends[i] = len(encoded)
	}
	bodies := offHeap(b, encoded, ends)
	// The decode floor, timed chunk by chunk between the pipeline's
	// chunks over the same messages (so both run at the same clock speed,
	// beside the same garbage), each decoder reading a copy of the
	// bodies of its own (so neither warms the cache for the pipeline):
	// go-json's (what x-decode divides by, as when the targets were set)
	// and the fast path's that Ingest takes.
	var jsonBodies, fastBodies messages
	if floors {
		jsonBodies, fastBodies = offHeap(b, encoded, ends), offHeap(b, encoded, ends)
	}
	encoded = nil
	var goJSON, fast time.Duration
	var in interner
	// The setup's garbage collected before the clock starts: a collection
	// still marking would run beside the timed loop and slow its stores
	// (write barriers) and its cores.
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	var ds []Decision
	for lo := 0; lo < n; lo += floorChunk {
		hi := min(lo+floorChunk, n)
		if floors {
			b.StopTimer()
			start := time.Now()
			for i := lo; i < hi; i++ {
				f, err := decodeGoJSON(jsonBodies.at(i))
				if err == nil {
					_, err = f.check(keys[i])
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			mid := time.Now()
			for i := lo; i < hi; i++ {
				if _, err := decode(fastBodies.at(i), keys[i], &in); err != nil {
					b.Fatal(err)
				}
			}
			goJSON, fast = goJSON+mid.Sub(start), fast+time.Since(mid)
			b.StartTimer()
		}
		for i := lo; i < hi; i++ {
			var err error
			if ds, err = p.Ingest(bodies.at(i), keys[i], ds[:0]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if want := int64(b.N * perDeployment / metrics); p.Evaluations != want {
		b.Fatalf("%d evaluations for %d metrics, want %d", p.Evaluations, b.N, want)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
	if goJSON > 0 && fast > 0 {
		b.ReportMetric(float64(b.Elapsed())/float64(goJSON), "x-decode")
		b.ReportMetric(float64(b.Elapsed())/float64(fast), "x-fastdecode")
		b.ReportMetric(float64(goJSON)/float64(b.N), "go-json-ns/metric")
	}
}

// floorChunk is how many messages the pipeline benchmark decodes alone
// between the pipeline's chunks of as many.
const floorChunk = 2048

// messages are a benchmark's message bodies, laid end to end in memory
// mapped outside Go's heap: message i is mem[ends[i-1]:ends[i]].
type messages struct {
	mem  []byte
	ends []int
}

func (m messages) at(i int) []byte {
	start := 0
	if i > 0 {
		start = m.ends[i-1]
	}
	return m.mem[start:m.ends[i]:m.ends[i]]
}

// offHeap copies encoded (the bodies ending at ends) into memory of its
// own, mapped outside Go's heap. On the heap, a run's messages (about
// 75 MB a copy at 300,000) were most of its live bytes: the collector
// then ran only every couple of hundred MB allocated, so go-json's
// garbage went to memory long out of every cache, and beside the
// compiled pipeline, which makes next to none, its floor read 2-3x
// slower than it decodes in a server (BenchmarkDecodeGoJSON): x-decode
// flattered the pipeline.
func offHeap(b *testing.B, encoded []byte, ends []int) messages {
	mem, err := syscall.Mmap(-1, 0, max(len(encoded), 1), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		b.Fatalf("mapping %d bytes of messages: %v", len(encoded), err)
	}
	b.Cleanup(func() { _ = syscall.Munmap(mem) })
	copy(mem, encoded)
	return messages{mem: mem, ends: ends}
}

const indexedPolicies = `
policy_type "mean_cpu" {
  condition "high" { when = mean(window("cpu", "10s")) > 1000 }
}
policy_type "interpreted_cpu" {
  condition "high" { when = [mean(window("cpu", "10s"))][0] > 1000 }
}
node "web" {}
node "db" {}
workflow "w" { uses = "test.scale" }
policy "hcl_cpu" {
  type     = policy_type.mean_cpu
  trigger "high" { workflow = workflow.w }
}
policy "interp_cpu" {
  type     = policy_type.interpreted_cpu
  trigger "high" { workflow = workflow.w }
}
policy "rps" {
  type       = "orch.rps_burst"
  properties = { burst_value = 40, reconcile_value = 20, throttle_delay = "3s" }
  trigger "burst" { workflow = workflow.w }
}
policy "selector_cpu" {
  type       = "orch.scale_threshold"
  properties = { service_selector = "web[.].*[.]cpu", scale_threshold = 70, scale_limit = 5 }
  trigger "scale" { workflow = workflow.w }
}
`

func TestPipelineEvaluatesOnlyThePoliciesAMetricCanChange(t *testing.T) {
	pols := resolvePolicies(t, indexedPolicies)
	for _, tc := range []struct {
		name             string
		node, name_, key string
		want             []string
	}{
		{"a metric by name evaluates the policies of its window and the interpreted one", "web", "cpu", "total", []string{"hcl_cpu", "interp_cpu", "selector_cpu", "web_only_cpu"}},
		{"its path is a name too", "web", "load", "cpu", []string{"hcl_cpu", "interp_cpu", "selector_cpu", "web_only_cpu"}},
		{"another metric evaluates only its own and the interpreted one", "web", "rps", "", []string{"interp_cpu", "rps"}},
		{"a metric no window reads evaluates only the interpreted one", "web", "mem", "free", []string{"interp_cpu"}},
		{"another node's metric leaves the policies of a node alone", "db", "cpu", "total", []string{"hcl_cpu", "interp_cpu"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPipeline(600)
			add := func(name string, tg Target) *Instance {
				in, err := NewInstance(tg, pols[name])
				if err != nil {
					t.Fatal(err)
				}
				p.Add("shop", in)
				return in
			}
			ins := map[string]*Instance{}
			for _, name := range []string{"hcl_cpu", "interp_cpu", "rps", "selector_cpu"} {
				ins[name] = add(name, Target{Deployment: "shop"})
			}
			ins["web_only_cpu"] = add("hcl_cpu", Target{Deployment: "shop", Nodes: map[string]bool{"web": true}})
			service := "shop." + tc.node + "." + tc.node + "_1." + tc.name_
			if tc.key != "" {
				service += "." + tc.key
			}
			m := &Metric{DeploymentID: "shop", NodeName: tc.node, NodeID: tc.node + "_1", Host: "h1", Name: tc.name_, Path: tc.key, Value: 1, Time: 1.7e9, Service: service}
			if _, err := p.Apply(m, nil); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, name := range []string{"hcl_cpu", "interp_cpu", "rps", "selector_cpu", "web_only_cpu"} {
				if ins[name].started {
					got = append(got, name)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || p.Evaluations != int64(len(tc.want)) {
				t.Errorf("evaluated %v (%d evaluations), want %v", got, p.Evaluations, tc.want)
			}
			// Policies added later are found for the same series.
			late := add("rps", Target{Deployment: "shop"})
			m.Time++
			if _, err := p.Apply(m, nil); err != nil {
				t.Fatal(err)
			}
			if want := tc.name_ == "rps"; late.started != want {
				t.Errorf("a policy added after the series started: evaluated %v, want %v", late.started, want)
			}
		})
	}
}

// withSelector is pol with its service_selector set to sel.
func withSelector(pol *blueprints.PlanPolicy, sel string) *blueprints.PlanPolicy {
	cp := *pol
	props, marks := pol.Properties.Unmark()
	m := props.AsValueMap()
	m["service_selector"] = cty.StringVal(sel)
	cp.Properties = cty.ObjectVal(m).WithMarks(marks)
	return &cp
}

// decodeIdent is decodeInto returning the metric.
func decodeIdent(data []byte, routingKey string, in *interner) (Metric, *ident, error) {
	var m Metric
	id, err := decodeInto(data, routingKey, in, &m)
	return m, id, err
}

// A message of a known identity takes its strings and its series from
// there: never another identity's (one differing in a field the hash
// leaves out, or sharing its hash), and never a series that is gone.
func TestIdentitiesKeepTheirStringsAndFindTheirSeries(t *testing.T) {
	msg := func(dep, unit, host string, v, at int) []byte {
		return fmt.Appendf(nil, `{"node_id":"web_1","node_name":"web","deployment_id":%q,"name":"cpu","path":"total","metric":%d,"unit":%q,"type":"GAUGE","host":%q,"service":"%s.web.web_1.cpu.total","time":%d}`,
			dep, v, unit, host, dep, at)
	}
	t.Run("the same identity, the same strings and series", func(t *testing.T) {
		var in interner
		a, ida, err := decodeIdent(msg("shop", "percent", "h1", 1, 1e9), "", &in)
		if err != nil {
			t.Fatal(err)
		}
		b, idb, err := decodeIdent(msg("shop", "percent", "h1", 2, 1e9+1), "", &in)
		if err != nil {
			t.Fatal(err)
		}
		if ida == nil || ida != idb || unsafe.StringData(a.Service) != unsafe.StringData(b.Service) || b.Value != 2 || b.Time != 1e9+1 {
			t.Fatalf("identities %p %p, metrics %+v %+v", ida, idb, a, b)
		}
		c, idc, err := decodeIdent(msg("shop", "bytes", "h1", 3, 1e9+2), "", &in)
		if err != nil {
			t.Fatal(err)
		}
		if c.Unit != "bytes" || idc == ida {
			t.Fatalf("a unit the hash leaves out: %+v, identity %p (the other's %p)", c, idc, ida)
		}
	})
	t.Run("a known identity still has its numbers checked", func(t *testing.T) {
		var in interner
		if _, _, err := decodeIdent(msg("shop", "percent", "h1", 1, 1e9), "", &in); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ body, kind string }{
			{`{"node_id":"web_1","node_name":"web","deployment_id":"shop","name":"cpu","path":"total","unit":"percent","type":"GAUGE","host":"h1","service":"shop.web.web_1.cpu.total","time":1000000000}`, "missing"},
			{`{"node_id":"web_1","node_name":"web","deployment_id":"shop","name":"cpu","path":"total","metric":1,"unit":"percent","type":"GAUGE","host":"h1","service":"shop.web.web_1.cpu.total"}`, "missing"},
			{string(msg("shop", "percent", "h1", 1, -5)), "value"},
			{strings.Replace(string(msg("shop", "percent", "h1", 1, 1e9)), `"metric":1`, `"metric":1e300`, 1), "value"},
		} {
			_, _, err := decodeIdent([]byte(tc.body), "", &in)
			if kind, _ := IsMalformed(err); kind != tc.kind {
				t.Errorf("%s: %v, want a %s error", tc.body, err, tc.kind)
			}
		}
	})
	t.Run("a hash shared by another identity is not taken for it", func(t *testing.T) {
		var in interner
		body := msg("shop", "percent", "h1", 1, 1e9)
		var f fields
		var raw rawStrings
		if !scanFast(body, &f, &raw, nil) {
			t.Fatal("not scanned")
		}
		_, h, ok := in.known(&raw)
		if !ok {
			t.Fatal("a Diamond message has no identity")
		}
		other, _, err := decodeIdent(msg("bank", "percent", "h9", 1, 1e9), "", &in)
		if err != nil {
			t.Fatal(err)
		}
		in.idents[h] = in.keep(h, &other) // as if bank's hashed as shop's
		m, id, err := decodeIdent(body, "", &in)
		if err != nil {
			t.Fatal(err)
		}
		if m.DeploymentID != "shop" || m.Host != "h1" || id == nil || id.strs[2] != "shop" {
			t.Fatalf("took %+v (identity %v)", m, id)
		}
	})
	t.Run("a series gone is found again", func(t *testing.T) {
		pols := resolvePolicies(t, scaleCLJ)
		p := NewPipeline(600)
		p.Now = nil
		add := func() {
			in, err := NewInstance(Target{Deployment: "shop"}, pols["builtin_up"])
			if err != nil {
				t.Fatal(err)
			}
			p.Add("shop", in)
		}
		add()
		ingest := func(v, at int) {
			t.Helper()
			if _, err := p.Ingest(msg("shop", "percent", "h1", v, at), "", nil); err != nil {
				t.Fatal(err)
			}
		}
		mean := func(at int) (float64, bool) {
			return p.Windows.Reduce("mean", Query{Deployment: "shop", Metric: "cpu", Seconds: 5, Now: float64(at)}, 0)
		}
		ingest(10, 1000)
		p.Windows.Expire(2000) // past its ttl
		ingest(30, 2001)
		if v, ok := mean(2001); !ok || v != 30 || p.Windows.Len() != 1 {
			t.Fatalf("after the series expired: mean %v %v, %d series", v, ok, p.Windows.Len())
		}
		p.Remove("shop")
		add()
		ingest(50, 2002)
		if v, ok := mean(2002); !ok || v != 50 || p.Windows.Len() != 1 {
			t.Fatalf("after the deployment was removed and added: mean %v %v, %d series", v, ok, p.Windows.Len())
		}
		p.Windows = NewWindows(600)
		ingest(70, 2003)
		if v, ok := mean(2003); !ok || v != 70 {
			t.Fatalf("in new windows: mean %v %v", v, ok)
		}
	})
}

// The pipeline's wall clock reads the monotonic clock between syncs: it
// stays within a millisecond of time.Now, and a second after a sync it
// takes the wall time again.
func TestWallClockFollowsTheHostsClock(t *testing.T) {
	var c wallClock
	for i := range 2000 {
		before := time.Now()
		got := c.Now()
		after := time.Now()
		if got.Before(before.Add(-time.Millisecond)) || got.After(after.Add(time.Millisecond)) {
			t.Fatalf("read %d: %v, not between %v and %v", i, got, before, after)
		}
		if i == 1000 {
			// As if the host's clock stepped an hour and a second passed
			// since the sync: the next read syncs again.
			c.offset.Add(-int64(time.Hour))
			c.synced.Store(c.synced.Load() - int64(2*time.Second))
		}
	}
	if c.synced.Load() == 0 {
		t.Fatal("never synced")
	}
}
