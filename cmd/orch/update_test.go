package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orchhq/orch/workflows"
)

// nodecellarV2 is the nodecellar example changed: the database (its host,
// the app's relationship to it, the output reading it) dropped, a cache
// added that the apps depend on, and the hosts given a property.
func nodecellarV2(t *testing.T, src string) string {
	t.Helper()
	edits := []struct{ old, new string }{
		{"node \"mongo_host\" {\n  type = \"nodecellar.Host\"\n}\n\nnode \"mongod\" {\n  type         = \"nodecellar.Mongo\"\n  contained_in = node.mongo_host\n}\n", "node \"cache\" {\n  type = \"nodecellar.Component\"\n}\n"},
		{"  relationship {\n    type   = \"nodecellar.ConnectedToMongo\"\n    target = node.mongod\n  }\n", "  depends_on   = [node.cache]\n"},
		{"node_type \"nodecellar.Host\" {\n  derived_from = \"nodecellar.Component\"\n}", "node_type \"nodecellar.Host\" {\n  derived_from = \"nodecellar.Component\"\n  property \"zone\" { default = \"b\" }\n}"},
	}
	for _, e := range edits {
		if !strings.Contains(src, e.old) {
			t.Fatalf("the nodecellar example changed: %q not found", e.old)
		}
		src = strings.Replace(src, e.old, e.new, 1)
	}
	if i := strings.Index(src, "output \"mongo_url\""); i >= 0 {
		src = src[:i]
	}
	return src
}

// orch deployments update on the nodecellar example, from what its
// operations wrote: the dry run changes nothing; the update installs only
// the added node, removes only the dropped ones (the app unlinking from
// the database first), leaves the rest alone; an update killed with
// SIGKILL in the middle resumes to the new blueprint.
func TestDeploymentUpdate(t *testing.T) {
	for _, kill := range []bool{false, true} {
		name := "whole"
		if kill {
			name = "killed and resumed"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"blueprint.hcl", "op.sh"} {
				b, err := os.ReadFile(filepath.Join("../../examples/nodecellar", f))
				if err != nil {
					t.Fatal(err)
				}
				if f == "blueprint.hcl" {
					if err := os.WriteFile(filepath.Join(dir, "v2.hcl"), []byte(nodecellarV2(t, string(b))), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			state, journal := filepath.Join(dir, "state.db"), filepath.Join(dir, "journal")
			run := func(args ...string) result {
				t.Helper()
				r := orch(t, state, args...)
				if r.code != 0 {
					t.Fatalf("orch %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
				}
				return r
			}
			run("deploy", filepath.Join(dir, "blueprint.hcl"), "-d", "nc", "-i", "journal="+journal)
			before := showDeployment(t, state, "nc")
			_ = os.WriteFile(journal, nil, 0o600)

			r := run("deployments", "update", "nc", filepath.Join(dir, "v2.hcl"), "--dry-run")
			for _, want := range []string{"remove node mongo_host", "remove node mongod", "add node cache", "change node host",
				"relationship nodecellar -> mongod (nodecellar.ConnectedToMongo) removed", "relationship nodecellar -> cache (orch.DependsOn) added"} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("dry run lacks %q:\n%s", want, r.stdout)
				}
			}
			if b, _ := os.ReadFile(journal); len(b) > 0 || len(showDeployment(t, state, "nc").Instances) != len(before.Instances) {
				t.Fatalf("the dry run changed something:\n%s", b)
			}

			if !kill {
				run("deployments", "update", "nc", filepath.Join(dir, "v2.hcl"))
			} else {
				killDuringCreate(t, state, journal, "cache_", "deployments", "update", "nc", filepath.Join(dir, "v2.hcl"))
				r := run("-o", "json", "executions", "list", "-d", "nc")
				var xs []*workflows.Execution
				if err := json.Unmarshal([]byte(r.stdout), &xs); err != nil {
					t.Fatal(err)
				}
				killed := xs[len(xs)-1]
				if killed.Workflow != workflows.UpdateWorkflow || killed.Status.Ended() {
					t.Fatalf("the killed update is %s %s", killed.Workflow, killed.Status)
				}
				run("executions", "resume", killed.ID)
				if x := executionOf(t, state, killed.ID); x.Status != workflows.Succeeded || x.Resumes == 0 {
					t.Fatalf("resumed update %s (resumes %d): %s", x.Status, x.Resumes, x.Error)
				}
			}

			d := showDeployment(t, state, "nc")
			j := readJournal(t, journal)
			if len(ofNode(d, "mongod")) != 0 || len(ofNode(d, "mongo_host")) != 0 || len(ofNode(d, "cache")) != 1 {
				t.Fatalf("after the update: %v", instanceIDs(d))
			}
			cache := ofNode(d, "cache")[0]
			if cache.State != workflows.StateStarted || count(j, "create", cache.ID) != 1 || count(j, "start", cache.ID) != 1 {
				t.Errorf("cache %s is %s, created %d times\n%v", cache.ID, cache.State, count(j, "create", cache.ID), j)
			}
			db := ofNode(before, "mongod")[0].ID
			for _, app := range ofNode(before, "nodecellar") {
				if d.Instances[app.ID] == nil {
					t.Errorf("app %s removed", app.ID)
				}
				u, del := at(j, "unlink", db, app.ID+"->"+db), at(j, "delete", db, "")
				if u < 0 || del < 0 || u > del {
					t.Errorf("app %s unlinked at %d, the db deleted at %d\n%v", app.ID, u, del, j)
				}
				for _, l := range d.Instances[app.ID].Links {
					if l.Target == db {
						t.Errorf("app %s still links to the db", app.ID)
					}
				}
			}
			for id := range before.Instances {
				if n := before.Instances[id].Node; n == "host" || n == "nodecellar" {
					if count(j, "create", id)+count(j, "delete", id)+count(j, "stop", id) > 0 {
						t.Errorf("the update touched %s (%s):\n%v", id, n, j)
					}
				}
			}
			var stored map[string]any
			r = run("-o", "json", "deployments", "show", "nc")
			if err := json.Unmarshal([]byte(r.stdout), &stored); err != nil {
				t.Fatal(err)
			}
			if props, _ := stored["properties"].(map[string]any); props["host"] == nil || props["host"].(map[string]any)["zone"] != "b" {
				t.Errorf("the hosts' new property is not shown: %v", stored["properties"])
			}
		})
	}
}

func executionOf(t *testing.T, state, id string) *workflows.Execution {
	t.Helper()
	r := orch(t, state, "-o", "json", "executions", "show", id)
	var x workflows.Execution
	if err := json.Unmarshal([]byte(r.stdout), &x); err != nil {
		t.Fatalf("executions show %s: %v\n%s", id, err, r.stdout)
	}
	return &x
}
