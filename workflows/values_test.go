package workflows_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/workflows"
)

// captureWorkflow decodes its typed parameters once, as a plugin does.
type captureWorkflow struct {
	mu  *sync.Mutex
	got *[]captured
}

type captured struct {
	Count  int      `param:"count"`
	Name   string   `param:"name"`
	Tags   []string `param:"tags"`
	Secret string   `param:"secret"`
}

func (c captureWorkflow) Run(_ context.Context, wc plugins.WorkflowContext) error {
	var p captured
	if err := wc.Decode(&p); err != nil {
		return err
	}
	c.mu.Lock()
	*c.got = append(*c.got, p)
	c.mu.Unlock()
	return nil
}

const valuesBlueprint = `
workflow "capture" {
  uses = "test.capture"
  parameter "count" { type = number }
  parameter "name" { default = "x" }
  parameter "tags" {
    type    = list(string)
    default = []
  }
  parameter "secret" { default = "" }
}
`

// Typed values (a policy trigger's) reach the plugin as their parameters'
// types, are kept in the execution as typed JSON for a restart, a
// sensitive one is never stored, and a value of the wrong type is refused
// at submit.
func TestTypedValuesReachThePluginAndSecretsAreNotStored(t *testing.T) {
	var mu sync.Mutex
	var got []captured
	e := newEnv(t)
	reg := testRegistry(t)
	must(t, reg.RegisterWorkflow("test.capture", captureWorkflow{&mu, &got}))
	e.close()
	e.openWith(reg)
	if x := e.deploy("values", valuesBlueprint); x.Status != workflows.Succeeded {
		t.Fatalf("install: %s", x.Error)
	}
	ctx := context.Background()
	x, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "values", Workflow: "capture", Values: map[string]cty.Value{
		"count":  cty.StringVal("3"), // converted to the parameter's number
		"tags":   cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
		"secret": cty.StringVal("hunter2").Mark("sensitive"),
	}})
	must(t, err)
	stored, err := e.store.Execution(ctx, x.ID)
	must(t, err)
	if _, ok := stored.Values["count"]; !ok || stored.Values["secret"] != nil || strings.Join(stored.Sensitive, ",") != "secret" {
		t.Errorf("stored values %v, sensitive %v", stored.Values, stored.Sensitive)
	}
	for k, raw := range stored.Values {
		if strings.Contains(string(raw), "hunter2") {
			t.Errorf("the secret is stored in %s: %s", k, raw)
		}
	}
	end, err := e.svc.Engine.Wait(ctx, x.ID)
	must(t, err)
	if end.Status != workflows.Succeeded {
		t.Fatalf("capture %s: %s", end.Status, end.Error)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].Count != 3 || got[0].Name != "x" || strings.Join(got[0].Tags, ",") != "a,b" || got[0].Secret != "hunter2" {
		t.Errorf("the plugin decoded %+v", got)
	}
	if _, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "values", Workflow: "capture", Values: map[string]cty.Value{"count": cty.StringVal("three")}}); err == nil || !strings.Contains(err.Error(), `parameter "count" must be number`) {
		t.Errorf("a value of the wrong type: %v", err)
	}
	if _, err := e.svc.Engine.Submit(ctx, workflows.Request{Deployment: "values", Workflow: "capture", Values: map[string]cty.Value{"cuont": cty.NumberIntVal(1)}}); err == nil || !strings.Contains(err.Error(), `Did you mean "count"?`) {
		t.Errorf("an unknown parameter: %v", err)
	}
}
