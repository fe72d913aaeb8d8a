package blueprints

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

func resolveSource(t *testing.T, src string, inputs map[string]cty.Value) *Plan {
	t.Helper()
	bp, diags := Parse(map[string][]byte{"main.hcl": []byte(src)}, CoreTypes, "main.hcl")
	if diags.HasErrors() {
		t.Fatalf("parse: %s", diags)
	}
	plan, diags := Resolve(bp, testCatalog, inputs)
	if diags.HasErrors() {
		t.Fatalf("resolve: %s", diags)
	}
	return plan
}

func planNode(p *Plan, name string) *PlanNode {
	for _, n := range p.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name   string
		src    string
		inputs map[string]cty.Value
		check  func(t *testing.T, p *Plan)
	}{
		{
			name: "input defaults and given values reach node properties",
			src: `
input "ctx" { default = "peer" }
input "replicas" { type = number }
node "peer" { properties = { context = input.ctx, replicas = input.replicas + 1 } }`,
			inputs: map[string]cty.Value{"replicas": cty.NumberIntVal(2)},
			check: func(t *testing.T, p *Plan) {
				got := GoMap(planNode(p, "peer").Properties, false)
				want := map[string]any{"context": "peer", "replicas": int64(3)}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("properties = %v, want %v", got, want)
				}
			},
		},
		{
			name: "node properties may use other nodes' properties, declared later",
			src: `
node "app" { properties = { url = "http://${node.db.properties.host}:${node.db.properties.port}" } }
node "db" { properties = { host = "db.local", port = 5432 } }`,
			check: func(t *testing.T, p *Plan) {
				if got := GoMap(planNode(p, "app").Properties, false)["url"]; got != "http://db.local:5432" {
					t.Errorf("url = %v", got)
				}
			},
		},
		{
			name: "node type defaults, inheritance and overrides",
			src: `
node_type "service" {
  property "port" { default = 80 }
  property "name" { type = string }
  operation "create" {
    implementation = "script"
    inputs         = { command = ["echo", self.properties.name] }
  }
}
node_type "web" {
  derived_from = "service"
  property "port" { default = 8080 }
}
node "w" {
  type       = "web"
  properties = { name = "front" }
}`,
			check: func(t *testing.T, p *Plan) {
				n := planNode(p, "w")
				if !reflect.DeepEqual(n.Types, []string{"web", "service"}) {
					t.Errorf("types = %v", n.Types)
				}
				props := GoMap(n.Properties, false)
				if props["port"] != int64(8080) || props["name"] != "front" {
					t.Errorf("properties = %v", props)
				}
				op := n.Operations["create"]
				if op == nil {
					t.Fatal("create operation not inherited")
				}
				if got := GoMap(op.Inputs, false)["command"]; !reflect.DeepEqual(got, []any{"echo", "front"}) {
					t.Errorf("inputs.command = %v", got)
				}
				if op.Timeout != DefaultOperationTimeout || op.MaxRetries != DefaultMaxRetries {
					t.Errorf("operation defaults = %s, %d", op.Timeout, op.MaxRetries)
				}
			},
		},
		{
			name: "relationships become dependencies",
			src: `
node "host" {}
node "db" { contained_in = node.host }
node "app" {
  contained_in = node.host
  connected_to = [node.db]
  depends_on   = [node.db]
}`,
			check: func(t *testing.T, p *Plan) {
				if got := planNode(p, "app").Dependencies(); !reflect.DeepEqual(got, []string{"host", "db"}) {
					t.Errorf("dependencies = %v", got)
				}
			},
		},
		{
			name: "workflow parameter defaults reference nodes and functions",
			src: `
node "bookings" { properties = { app = "bookings" } }
node "peer" {}
workflow "burst" {
  uses = "script.workflow"
  parameter "app" { default = upper(node.bookings.properties.app) }
  parameter "to" { default = node.peer.name }
  parameter "weight" {
    type    = number
    default = 25
  }
}`,
			check: func(t *testing.T, p *Plan) {
				vals, err := p.Workflows["burst"].Bind(map[string]string{"weight": "40"})
				if err != nil {
					t.Fatal(err)
				}
				got := map[string]any{}
				for k, v := range vals {
					got[k] = GoValue(v, false)
				}
				want := map[string]any{"app": "BOOKINGS", "to": "peer", "weight": int64(40)}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("bound = %v, want %v", got, want)
				}
			},
		},
		{
			name: "policies resolve type defaults and triggers",
			src: `
node "bookings" {}
workflow "burst" { uses = "script.workflow" }
policy_type "rps_burst" {
  parameter "burst_value" { type = number }
  parameter "throttle_delay" { default = "120s" }
  condition "burst" { when = min(window("rps", param.throttle_delay)) > param.burst_value }
}
policy "bookings_rps" {
  type       = policy_type.rps_burst
  targets    = [node.bookings]
  properties = { burst_value = 100 }
  trigger "burst" { workflow = workflow.burst }
}`,
			check: func(t *testing.T, p *Plan) {
				if len(p.Policies) != 1 {
					t.Fatalf("policies = %d", len(p.Policies))
				}
				got := GoMap(p.Policies[0].Properties, false)
				want := map[string]any{"burst_value": int64(100), "throttle_delay": "120s"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("policy properties = %v, want %v", got, want)
				}
			},
		},
		{
			name: "outputs",
			src: `
input "dir" { default = "/tmp/x" }
node "f" { properties = { path = "${input.dir}/f" } }
output "path" { value = node.f.properties.path }`,
			check: func(t *testing.T, p *Plan) {
				if got := GoValue(p.Outputs["path"], false); got != "/tmp/x/f" {
					t.Errorf("output = %v", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, resolveSource(t, tt.src, tt.inputs))
		})
	}
}

func TestResolveReportsMissingAndUnknownInputs(t *testing.T) {
	bp, diags := Parse(map[string][]byte{"main.hcl": []byte(`input "size" { type = number }`)}, CoreTypes, "main.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, diags = Resolve(bp, testCatalog, map[string]cty.Value{"sise": cty.NumberIntVal(1)})
	got := formatDiags(diags)
	for _, want := range []string{"1:1: Missing required input", "-: Unknown input"} {
		if !strings.Contains(got, want) {
			t.Errorf("diagnostics %q lack %q", got, want)
		}
	}
	if !strings.Contains(diags.Error(), `Did you mean "size"?`) {
		t.Errorf("no suggestion in %s", diags.Error())
	}
	// Validate alone accepts a missing input: it is only unknown.
	if d := Validate(bp, testCatalog); d.HasErrors() {
		t.Errorf("validate: %s", d)
	}
}

func TestSensitiveInputsAreRedacted(t *testing.T) {
	plan := resolveSource(t, `
input "token" { sensitive = true }
node "api" { properties = { header = "Bearer ${input.token}", url = "https://x" } }`,
		map[string]cty.Value{"token": cty.StringVal("s3cr3t")})
	props := planNode(plan, "api").Properties
	shown := GoMap(props, true)
	if shown["header"] != Redacted || shown["url"] != "https://x" {
		t.Errorf("redacted = %v", shown)
	}
	if real := GoMap(props, false); real["header"] != "Bearer s3cr3t" {
		t.Errorf("unredacted = %v", real)
	}
}

func TestImports(t *testing.T) {
	sources := map[string][]byte{
		"app/main.hcl":       []byte(`imports = ["../shared/types.hcl"]` + "\n" + `node "db" { type = "database" }`),
		"shared/types.hcl":   []byte(`imports = ["more.hcl"]` + "\n" + `node_type "database" { derived_from = "base" }`),
		"shared/more.hcl":    []byte(`imports = ["types.hcl"]` + "\n" + "node_type \"base\" {\n  property \"port\" { default = 5432 }\n}"),
		"unused/ignored.hcl": []byte(`this is not hcl`),
	}
	bp, diags := Parse(sources, CoreTypes, "app/main.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(bp.Sources) != 3 {
		t.Errorf("read %d sources, want 3 (imports once each, cycles ignored)", len(bp.Sources))
	}
	plan, diags := Resolve(bp, testCatalog, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if got := GoMap(planNode(plan, "db").Properties, false)["port"]; got != int64(5432) {
		t.Errorf("port = %v", got)
	}
}

func TestDuplicatesAcrossFiles(t *testing.T) {
	sources := map[string][]byte{
		"a.hcl": []byte(`node "web" {}`),
		"b.hcl": []byte("\n" + `node "web" {}`),
	}
	_, diags := Parse(sources, CoreTypes, "a.hcl", "b.hcl")
	bp, _ := Parse(sources, CoreTypes, "a.hcl", "b.hcl")
	diags = append(diags, Validate(bp, testCatalog)...)
	if !diags.HasErrors() || diags[0].Subject.Filename != "b.hcl" || diags[0].Subject.Start.Line != 2 {
		t.Fatalf("want a duplicate at b.hcl:2, got %v", diags)
	}
	if !strings.Contains(diags[0].Detail, "a.hcl:1") {
		t.Errorf("detail should name the first declaration: %s", diags[0].Detail)
	}
}

func TestParseValue(t *testing.T) {
	tests := []struct {
		raw     string
		ty      cty.Type
		want    any
		wantErr bool
	}{
		{"+1", cty.String, "+1", false},
		{"+1", cty.DynamicPseudoType, "+1", false},
		{"3", cty.Number, int64(3), false},
		{"2.5", cty.Number, 2.5, false},
		{"many", cty.Number, nil, true},
		{"true", cty.Bool, true, false},
		{`["a","b"]`, cty.List(cty.String), []any{"a", "b"}, false},
		{`{"a":1}`, cty.Map(cty.Number), map[string]any{"a": int64(1)}, false},
		{`[1,`, cty.List(cty.Number), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			v, err := ParseValue(tt.raw, tt.ty)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !reflect.DeepEqual(GoValue(v, false), tt.want) {
				t.Errorf("got %#v, want %#v", GoValue(v, false), tt.want)
			}
		})
	}
}

func TestBindErrors(t *testing.T) {
	plan := resolveSource(t, `
workflow "scale" {
  uses = "script.workflow"
  parameter "name" { type = string }
  parameter "amount" { default = "+0" }
}`, nil)
	w := plan.Workflows["scale"]
	if _, err := w.Bind(map[string]string{"amount": "+1"}); err == nil || !strings.Contains(err.Error(), `needs parameter "name"`) {
		t.Errorf("missing required: %v", err)
	}
	if _, err := w.Bind(map[string]string{"name": "x", "amout": "1"}); err == nil || !strings.Contains(err.Error(), `Did you mean "amount"?`) {
		t.Errorf("misspelled: %v", err)
	}
}

func TestConditionFunctionsTypeCheck(t *testing.T) {
	ok := []string{
		`mean(window("cpu", "30s")) > 1`,
		`min(window("rps", "2m")) > 100 && max(window("rps", "2m")) < 1000`,
		`percentile(window("latency", "1m"), 99) > 0.5`,
		`ewma(window("cpu", "1m"), 0.3) > 80 || hosts(window("cpu", "10s")) < 3`,
		`rate(window("requests", "10s")) > 50 && count(window("x", "5s")) >= 1 && sum(window("x", "5s")) > 0`,
		`max(1, 2) > 1`,
	}
	for _, expr := range ok {
		src := fmt.Sprintf("policy_type \"t\" {\n  condition \"c\" { when = %s }\n}\n", expr)
		bp, diags := Parse(map[string][]byte{"t.hcl": []byte(src)}, CoreTypes, "t.hcl")
		diags = append(diags, Validate(bp, testCatalog)...)
		if diags.HasErrors() {
			t.Errorf("%s: %s", expr, diags)
		}
	}
}

func TestSourcesResolveWithInputs(t *testing.T) {
	src := `
input "prom" { default = "http://127.0.0.1:9090" }
input "token" { sensitive = true }
node "web" {}
source "rps" {
  kind         = "prometheus"
  url          = input.prom
  query        = "sum by (instance) (rate(http_requests_total[1m]))"
  metric       = "rps"
  node         = node.web
  interval     = "5s"
  bearer_token = input.token
}
source "up" {
  kind       = "prometheus"
  url        = "https://prom.example"
  query      = "count(up == 1)"
  metric     = "up"
  node       = node.web
  host_label = "pod"
  bearer_token_file = "/run/secrets/prom"
}
`
	plan := resolveSource(t, src, map[string]cty.Value{"token": cty.StringVal("s3cret")})
	if len(plan.MetricSources) != 2 {
		t.Fatalf("%d sources", len(plan.MetricSources))
	}
	rps, up := plan.MetricSources[0], plan.MetricSources[1]
	for _, c := range []struct{ what, got, want string }{
		{"url", rps.URL, "http://127.0.0.1:9090"},
		{"metric", rps.Metric, "rps"},
		{"node", rps.Node, "web"},
		{"default host label", rps.HostLabel, "instance"},
		{"token", rps.Token(), "s3cret"},
		{"host label", up.HostLabel, "pod"},
		{"token file", up.BearerTokenFile, "/run/secrets/prom"},
		{"no token", up.Token(), ""},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !rps.BearerToken.HasMark(SensitiveMark) {
		t.Error("the token is not marked sensitive")
	}
	if rps.Interval != 5*time.Second || rps.Timeout != 5*time.Second || up.Interval != DefaultSourceInterval || up.Timeout != 10*time.Second {
		t.Errorf("intervals and timeouts %s/%s, %s/%s", rps.Interval, rps.Timeout, up.Interval, up.Timeout)
	}
}
