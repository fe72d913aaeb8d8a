package policies

import (
	"fmt"
	"testing"
	"time"
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
	if len(fired) != 1 || fired[0].Values["value"] != 95 || fired[0].Values["hosts"] != 1 {
		t.Errorf("fired %+v, want one scale-up (then cooldown)", fired)
	}
}

// BenchmarkPipeline: decode, window and evaluate with 1,000 policies (target
// at least 300,000 metrics/s per core). Policies are spread over
// deployments; each message goes to one deployment's policies; half of them
// are scale.clj written in HCL, compiled (the default) or left to HCL's
// interpreter, side by side. x-decode is the cost per metric as a multiple
// of decoding it, measured in the same run over the same messages.
func BenchmarkPipeline1000Policies(b *testing.B) {
	for _, shape := range []struct{ deployments, perDeployment int }{{1000, 1}, {100, 10}} {
		for _, mode := range []string{"compiled", "interpreted"} {
			b.Run(fmt.Sprintf("%dx%d/%s", shape.deployments, shape.perDeployment, mode), func(b *testing.B) {
				benchPipeline(b, shape.deployments, shape.perDeployment, mode == "interpreted")
			})
		}
	}
}

func benchPipeline(b *testing.B, deployments, perDeployment int, interpret bool) {
	pols := resolvePolicies(&testing.T{}, scaleCLJ)
	p := NewPipeline(60)
	for d := 0; d < deployments; d++ {
		dep := fmt.Sprintf("dep%d", d)
		for i := 0; i < perDeployment; i++ {
			pol := pols["builtin_up"]
			if i%2 == 1 || perDeployment == 1 && d%2 == 1 {
				pol = pols["hcl_up"]
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
	// deployment, each deployment reporting once a second.
	n := b.N
	bodies := make([][]byte, n)
	keys := make([]string, n)
	for i := range bodies {
		dep := fmt.Sprintf("dep%d", i%deployments)
		bodies[i] = []byte(fmt.Sprintf(`{"node_id":"web_1","node_name":"web","deployment_id":%q,"name":"cpu","path":"total","metric":%d,"unit":"percent","type":"GAUGE","host":"10.0.0.%d","service":"%s.web.web_1.cpu.total","time":%d}`,
			dep, 40+i%50, i%3, dep, 1700000000+i/deployments))
		keys[i] = dep
	}
	start := time.Now()
	for i := range min(n, 100000) {
		if _, err := Decode(bodies[i], keys[i]); err != nil {
			b.Fatal(err)
		}
	}
	decode := time.Since(start) / time.Duration(min(n, 100000))
	b.ReportAllocs()
	b.ResetTimer()
	var ds []Decision
	for i := 0; i < b.N; i++ {
		var err error
		if ds, err = p.Ingest(bodies[i], keys[i], ds[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
	if decode > 0 {
		b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(decode), "x-decode")
	}
}
