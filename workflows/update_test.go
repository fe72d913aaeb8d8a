package workflows_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/workflows"
)

const updateTypes = `
node_type "comp" {
  property "size" { default = 1 }
  operation "create" { implementation = "test" }
  operation "delete" { implementation = "test" }
  operation "update" { implementation = "test" }
}
relationship_type "uses" {
  derived_from = "orch.ConnectedTo"
  operation "establish" { implementation = "test" }
  operation "unlink" { implementation = "test" }
}
`

const updateV1 = updateTypes + `
node "db" { type = "comp" }
node "legacy" { type = "comp" }
node "app" {
  type = "comp"
  relationship {
    type   = "uses"
    target = node.legacy
  }
  relationship {
    type   = "uses"
    target = node.db
  }
}
`

// v2: legacy dropped, cache added (app uses it), db's size changed.
const updateV2 = updateTypes + `
node "db" {
  type       = "comp"
  properties = { size = 2 }
}
node "cache" { type = "comp" }
node "app" {
  type = "comp"
  relationship {
    type   = "uses"
    target = node.db
  }
  relationship {
    type   = "uses"
    target = node.cache
  }
}
`

func TestUpdateChangesOnlyWhatChanges(t *testing.T) {
	e := newEnv(t)
	if x := e.deploy("upd", updateV1); x.Status != workflows.Succeeded {
		t.Fatalf("install: %s %s", x.Status, x.Error)
	}
	before := map[string]string{}
	d, err := e.svc.Deployment(context.Background(), "upd")
	must(t, err)
	for id, inst := range d.Instances {
		before[inst.Node] = id
	}
	r := rec("upd")
	r.mu.Lock()
	r.order = nil
	r.mu.Unlock()
	v2 := filepath.Join(e.dir, "upd-v2.hcl")
	must(t, os.WriteFile(v2, []byte(updateV2), 0o644))
	req := orchestrator.UpdateRequest{DeployRequest: orchestrator.DeployRequest{Paths: []string{v2}, ID: "upd"}, DryRun: true}

	// The dry run says what it would do and does nothing.
	u, x, err := e.svc.Update(context.Background(), req)
	must(t, err)
	text := strings.Join(u.Changes, "\n")
	for _, want := range []string{"remove node legacy", "add node cache", "change node db: its properties change; its update operation runs",
		"relationship app -> cache (uses) added", "relationship app -> legacy (uses) removed"} {
		if !strings.Contains(text, want) {
			t.Errorf("dry run changes lack %q:\n%s", want, text)
		}
	}
	if x != nil {
		t.Errorf("a dry run submitted execution %s", x.ID)
	}
	if d2, _ := e.svc.Deployment(context.Background(), "upd"); len(d2.Instances) != 3 || d2.Blueprint != d.Blueprint {
		t.Errorf("the dry run changed the deployment: %d instances, blueprint %s", len(d2.Instances), d2.Blueprint)
	}

	req.DryRun = false
	_, x, err = e.svc.Update(context.Background(), req)
	must(t, err)
	x, err = e.svc.Engine.Wait(context.Background(), x.ID)
	must(t, err)
	if x.Status != workflows.Succeeded {
		t.Fatalf("update %s: %s", x.Status, x.Error)
	}
	r.mu.Lock()
	ran := slices.Clone(r.order)
	r.mu.Unlock()
	for op, want := range map[string]int{"app.create": 0, "db.create": 0, "app.delete": 0, "db.delete": 0,
		"legacy.delete": 1, "cache.create": 1, "db.update": 1, "app.unlink": 1, "app.establish": 1} {
		if got := count(ran, op); got != want {
			t.Errorf("%s ran %d times, want %d (ran %v)", op, got, want, ran)
		}
	}
	if i, j := slices.Index(ran, "app.unlink"), slices.Index(ran, "legacy.delete"); i < 0 || j < i {
		t.Errorf("legacy deleted before app unlinked from it: %v", ran)
	}
	if i, j := slices.Index(ran, "cache.create"), slices.Index(ran, "app.establish"); i < 0 || j < i {
		t.Errorf("app established with cache before it was created: %v", ran)
	}
	d, err = e.svc.Deployment(context.Background(), "upd")
	must(t, err)
	nodes := map[string]*workflows.NodeInstance{}
	for _, inst := range d.Instances {
		nodes[inst.Node] = inst
	}
	if nodes["legacy"] != nil || nodes["cache"] == nil || nodes["cache"].State != workflows.StateStarted ||
		nodes["app"].ID != before["app"] || nodes["db"].ID != before["db"] {
		t.Fatalf("instances after the update: %+v", nodes)
	}
	if len(nodes["app"].Links) != 2 {
		t.Errorf("app links %+v, want db and cache", nodes["app"].Links)
	}
	for _, l := range nodes["app"].Links {
		if !slices.Contains(l.Done, "establish") {
			t.Errorf("app link %+v not established", l)
		}
	}
	if d.Properties["db"]["size"] != float64(2) && d.Properties["db"]["size"] != int64(2) {
		t.Errorf("db properties %v, want size 2", d.Properties["db"])
	}
	// The same again changes nothing.
	u, x, err = e.svc.Update(context.Background(), req)
	must(t, err)
	if x != nil || !slices.Contains(u.Changes, "nothing changes") {
		t.Errorf("a second update: %v, execution %v", u.Changes, x)
	}
}
