package workflows_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/plugins/script"
	"github.com/orchhq/orch/workflows"
)

func instancesOf(t *testing.T, e *env, dep, node string) []*workflows.NodeInstance {
	t.Helper()
	d, err := e.store.Deployment(context.Background(), dep)
	must(t, err)
	return workflows.OfNode(d.Instances, node)
}

func run(t *testing.T, e *env, dep, wf string, params map[string]string) (*workflows.Execution, error) {
	t.Helper()
	x, err := e.svc.Engine.Submit(context.Background(), workflows.Request{Deployment: dep, Workflow: wf, Parameters: params})
	if err != nil {
		return nil, err
	}
	return e.svc.Engine.Wait(context.Background(), x.ID)
}

// Instances multiply down the containment tree and groups; connection
// types pick the targets; a scale of a group adds and removes whole group
// instances, bounded by the group's min and max.
func TestInstancesGroupsAndConnections(t *testing.T) {
	e := newEnv(t)
	x := e.deploy("topo", `
node "vm" {}
node "web" {
  contained_in = node.vm
  instances { default = 2 }
}
group "stack" {
  members = [node.vm, node.web]
  instances {
    default = 2
    max     = 3
  }
}
node "db" {
  instances { default = 3 }
}
node "one" {
  relationship {
    target          = node.db
    connection_type = "all_to_one"
  }
}
node "all" {
  connected_to = [node.db]
}
`)
	if x.Status != workflows.Succeeded {
		t.Fatalf("install %s: %s", x.Status, x.Error)
	}
	counts := map[string]int{"vm": 2, "web": 4, "db": 3, "one": 1, "all": 1}
	for node, want := range counts {
		if got := len(instancesOf(t, e, "topo", node)); got != want {
			t.Errorf("%d instances of %s, want %d", got, node, want)
		}
	}
	dbs := instancesOf(t, e, "topo", "db")
	if one := instancesOf(t, e, "topo", "one")[0]; len(one.Links) != 1 || one.Links[0].Target != dbs[0].ID {
		t.Errorf("all_to_one links %+v, want the oldest db %s", one.Links, dbs[0].ID)
	}
	if all := instancesOf(t, e, "topo", "all")[0]; len(all.Links) != 3 {
		t.Errorf("all_to_all has %d links, want 3", len(all.Links))
	}
	cases := []struct {
		name, entity, delta string
		vms, webs           int
		refused             string
	}{
		{"a group scales as a unit", "stack", "1", 3, 6, ""},
		{"past the group's max is refused", "stack", "1", 3, 6, "max 3"},
		{"a member scales with its group", "web", "1", 3, 6, "scales with its group"},
		{"scale in removes whole group instances", "stack", "-2", 1, 2, ""},
		{"an unknown entity is named", "stak", "1", 1, 2, "no node or group"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := run(t, e, "topo", "scale", map[string]string{"scalable_entity_name": c.entity, "delta": c.delta})
			if c.refused != "" {
				if err == nil || !strings.Contains(err.Error(), c.refused) {
					t.Errorf("want refused with %q, got %v", c.refused, err)
				}
			} else if err != nil || x.Status != workflows.Succeeded {
				t.Fatalf("scale: %v %+v", err, x)
			}
			vms, webs := instancesOf(t, e, "topo", "vm"), instancesOf(t, e, "topo", "web")
			if len(vms) != c.vms || len(webs) != c.webs {
				t.Errorf("%d vms and %d webs, want %d and %d", len(vms), len(webs), c.vms, c.webs)
			}
			for _, w := range webs {
				if w.State != workflows.StateStarted || !hasInstance(vms, w.Host) {
					t.Errorf("web %s is %s in host %q", w.ID, w.State, w.Host)
				}
			}
		})
	}
}

func hasInstance(list []*workflows.NodeInstance, id string) bool {
	for _, i := range list {
		if i.ID == id {
			return true
		}
	}
	return false
}

// An operation reading an attribute no operation published fails, naming
// it.
func TestMissingAttributeFailsTheOperation(t *testing.T) {
	e := newEnv(t)
	x := e.deploy("attr", `
node "app" {
  operation "create" {
    implementation = "test"
    inputs         = { fail = self.attributes.fail_next }
  }
}
`)
	if x.Status != workflows.Failed || !strings.Contains(x.Error, "fail_next") {
		t.Fatalf("install: %s %s", x.Status, x.Error)
	}
}

// A scale whose install fails removes the instances it added, and the
// deployment is as it was.
func TestFailedScaleRemovesWhatItAdded(t *testing.T) {
	e := newScriptEnv(t)
	flag := filepath.Join(e.dir, "fail")
	x := e.deploy("roll", fmt.Sprintf(`
node "app" {
  instances { default = 1 }
  operation "create" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "test ! -e \"$FLAG\""], FLAG = %q }
  }
}
`, flag))
	if x.Status != workflows.Succeeded {
		t.Fatalf("install: %s %s", x.Status, x.Error)
	}
	before := instancesOf(t, e, "roll", "app")
	must(t, os.WriteFile(flag, nil, 0o600))
	x, err := run(t, e, "roll", "scale", map[string]string{"scalable_entity_name": "app", "delta": "2"})
	if err != nil || x.Status != workflows.Failed || !strings.Contains(x.Error, "removed the 2 instance(s) it added") {
		t.Fatalf("scale: %v %+v", err, x)
	}
	after := instancesOf(t, e, "roll", "app")
	if len(after) != 1 || after[0].ID != before[0].ID || after[0].State != workflows.StateStarted {
		t.Errorf("instances after the failed scale: %+v", after)
	}
}

// execute_operation gives an operation whose inputs read runtime attributes
// both: the attributes as published, the kwargs over its own inputs.
func TestExecuteOperationReadsAttributesAndKwargs(t *testing.T) {
	e := newScriptEnv(t)
	out := filepath.Join(e.dir, "out")
	x := e.deploy("kw", fmt.Sprintf(`
node "db" {
  operation "create" {
    implementation = "script"
    inputs         = { command = ["sh", "-c", "echo addr=10.1.2.3 >> \"$ORCH_RUNTIME_FILE\""] }
  }
  operation "report" {
    implementation = "script"
    inputs = {
      command = ["sh", "-c", "echo \"$ADDR $LABEL\" >> \"$OUT\""]
      ADDR    = self.attributes.addr
      LABEL   = "default"
      OUT     = %q
    }
  }
}
`, out))
	if x.Status != workflows.Succeeded {
		t.Fatalf("install: %s %s", x.Status, x.Error)
	}
	x, err := run(t, e, "kw", "execute_operation", map[string]string{"operation": "report", "operation_kwargs": `{ LABEL = "nightly" }`})
	if err != nil || x.Status != workflows.Succeeded {
		t.Fatalf("execute_operation: %v %+v", err, x)
	}
	if b, _ := os.ReadFile(out); string(b) != "10.1.2.3 nightly\n" {
		t.Errorf("the operation got %q", b)
	}
}

// newScriptEnv is newEnv with the script plugin beside the test
// operations.
func newScriptEnv(t *testing.T) *env {
	e := newEnv(t)
	reg := testRegistry(t)
	must(t, reg.Add(script.Plugin{}))
	e.close()
	e.openWith(reg)
	return e
}
