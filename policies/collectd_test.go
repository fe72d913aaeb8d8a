package policies

import (
	"fmt"
	"strings"
	"testing"
)

// What collectd 5.12's write_amqp publishes (Format JSON, StoreRates true).
const collectdJSON = `[{"values":[12.5],"dstypes":["gauge"],"dsnames":["value"],"time":1763856000.125,"interval":10.000,"host":"web-1.example.com","plugin":"cpu","plugin_instance":"","type":"percent","type_instance":"user"},` +
	`{"values":[0.5,0.25,null],"dstypes":["gauge","gauge","gauge"],"dsnames":["shortterm","midterm","longterm"],"time":1763856000.125,"interval":10.000,"host":"web-1.example.com","plugin":"load","plugin_instance":"","type":"load","type_instance":""},` +
	`{"values":[95],"dstypes":["gauge"],"dsnames":["value"],"time":1763856001,"interval":1.000,"host":"web-1.example.com","plugin":"exec","plugin_instance":"app","type":"gauge","type_instance":"cpu"}]`

// The same values as Graphite lines (GraphiteSeparateInstances true;
// collectd escapes the host's dots).
const collectdGraphite = "web-1_example_com.cpu.percent.user 12.500000 1763856000\r\n" +
	"web-1_example_com.load.load.shortterm 0.500000 1763856000\r\n" +
	"web-1_example_com.load.load.midterm 0.250000 1763856000\r\n" +
	"web-1_example_com.load.load.longterm nan 1763856000\r\n" +
	"web-1_example_com.exec.app.gauge.cpu 95 1763856001\r\n"

func TestDecodeAllReadsCollectd(t *testing.T) {
	tests := []struct {
		name, body, key string
		want            []string // "service=value"
		skipped         int
		kind            string
	}{
		{name: "json", body: collectdJSON, key: "shop.web", skipped: 1, want: []string{
			"shop.web.web-1.example.com.cpu.percent.user=12.5",
			"shop.web.web-1.example.com.load.load.shortterm=0.5",
			"shop.web.web-1.example.com.load.load.midterm=0.25",
			"shop.web.web-1.example.com.exec.app.gauge.cpu=95",
		}},
		{name: "graphite", body: collectdGraphite, key: "shop.web", skipped: 1, want: []string{
			"shop.web.web-1_example_com.cpu.percent.user=12.5",
			"shop.web.web-1_example_com.load.load.shortterm=0.5",
			"shop.web.web-1_example_com.load.load.midterm=0.25",
			"shop.web.web-1_example_com.exec.app.gauge.cpu=95",
		}},
		{name: "a deployment id with dots", body: collectdGraphite, key: "shop.eu.web", skipped: 1, want: []string{
			"shop.eu.web.web-1_example_com.cpu.percent.user=12.5",
			"shop.eu.web.web-1_example_com.load.load.shortterm=0.5",
			"shop.eu.web.web-1_example_com.load.load.midterm=0.25",
			"shop.eu.web.web-1_example_com.exec.app.gauge.cpu=95",
		}},
		{name: "collectd's default routing key has no node", body: collectdJSON, key: "shop", kind: "missing"},
		{name: "json of another shape", body: `[{"values":"x"}]`, key: "shop.web", kind: "json"},
		{name: "a value list without its host", body: `[{"values":[1],"dsnames":["value"],"time":1,"plugin":"p","type":"t"}]`, key: "shop.web", kind: "missing"},
		{name: "values and dsnames disagree", body: `[{"values":[1,2],"dsnames":["value"],"time":1,"host":"h","plugin":"p","type":"t"}]`, key: "shop.web", kind: "missing"},
		{name: "graphite with a prefix or no type", body: "h.cpu 1 1763856000\n", key: "shop.web", kind: "missing"},
		{name: "graphite value not a number", body: "h.cpu.percent.user high 1763856000\n", key: "shop.web", kind: "type"},
		{name: "graphite time not epoch seconds", body: "h.cpu.percent.user 1 -5\n", key: "shop.web", kind: "value"},
		{name: "not a message at all", body: "hello", key: "shop.web", kind: "json"},
		{name: "empty", body: "", key: "shop.web", kind: "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, skipped, err := DecodeAll([]byte(tt.body), tt.key, nil)
			if tt.kind != "" {
				if kind, _ := IsMalformed(err); kind != tt.kind {
					t.Fatalf("err %v, want kind %s", err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, fmt.Sprintf("%s=%g", m.Service, m.Value))
				if m.NodeName != "web" || m.Host != m.NodeID || m.Key() != m.Name+"."+m.Path || !strings.HasPrefix(m.Service, m.DeploymentID+".web.") {
					t.Errorf("metric %+v", m)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") || skipped != tt.skipped {
				t.Errorf("got %v (%d skipped), want %v (%d)", got, skipped, tt.want, tt.skipped)
			}
		})
	}
}

// Both formats give a metric the same key (name.path), so a policy reads
// either.
func TestCollectdFormatsGiveTheSameKeys(t *testing.T) {
	js, _, err := DecodeAll([]byte(collectdJSON), "shop.web", nil)
	if err != nil {
		t.Fatal(err)
	}
	gs, _, err := DecodeAll([]byte(collectdGraphite), "shop.web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(js) != len(gs) {
		t.Fatalf("%d and %d metrics", len(js), len(gs))
	}
	for i := range js {
		if js[i].Key() != gs[i].Key() || js[i].Value != gs[i].Value {
			t.Errorf("%s=%g against %s=%g", js[i].Key(), js[i].Value, gs[i].Key(), gs[i].Value)
		}
	}
}

// A collectd message fills a policy's window through the pipeline: its
// values apply, the one collectd could not compute is counted.
func TestPipelineIngestsCollectd(t *testing.T) {
	pols := resolvePolicies(t, scaleCLJ)
	p := NewPipeline(600)
	in, err := NewInstance(Target{Deployment: "shop", Nodes: map[string]bool{"web": true}}, withSelector(pols["builtin_up"], `\.exec\.app\.gauge\.cpu`))
	if err != nil {
		t.Fatal(err)
	}
	p.Add("shop", in)
	ds, err := p.Ingest([]byte(collectdJSON), "shop.web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Malformed["value"] != 1 {
		t.Errorf("malformed %v, want the null counted", p.Malformed)
	}
	fired := 0
	for _, d := range ds {
		if d.Fired {
			fired++
		}
	}
	if fired != 1 || p.Evaluations == 0 {
		t.Errorf("%d fired of %+v (%d evaluations), want the exec value of 95 to fire", fired, ds, p.Evaluations)
	}
}

// FuzzDecodeAll: no message makes DecodeAll panic, and every metric it
// accepts, of any format, is complete and within orch's limits.
func FuzzDecodeAll(f *testing.F) {
	f.Add([]byte(collectdJSON), "shop.web")
	f.Add([]byte(collectdGraphite), "shop.web")
	f.Add([]byte(diamondMessage), "shop")
	f.Add([]byte(`[{"values":[1e400],"dsnames":["value"],"time":1,"host":"h","plugin":"p","type":"t"}]`), "a.b")
	f.Add([]byte("h.p.t 1e19 1\nh.p.t inf 1\n"), "a.b")
	f.Add([]byte("[]"), "a.b")
	f.Add([]byte(" \n "), "a.b")
	f.Fuzz(func(t *testing.T, data []byte, key string) {
		ms, skipped, err := DecodeAll(data, key, nil)
		if err != nil {
			if _, ok := IsMalformed(err); !ok {
				t.Fatalf("an error that is not a MalformedError: %v", err)
			}
			return
		}
		if skipped < 0 || len(ms) == 0 && skipped == 0 {
			t.Fatalf("accepted nothing without saying so: %d metrics, %d skipped", len(ms), skipped)
		}
		for _, m := range ms {
			if m.Host == "" || m.DeploymentID == "" || m.Time <= 0 || m.Time > MaxTime || m.Key() == "" || valueProblem(m.Value) != nil {
				t.Errorf("accepted an incomplete or out-of-range metric: %+v", m)
			}
		}
	})
}
