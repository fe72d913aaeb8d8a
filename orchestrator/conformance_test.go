package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/workflows"
)

// The store conformance suite: every StateStore answers alike. It runs on
// a bbolt file and on the test environment's etcd (its own prefix per
// test, deleted after).
var stores = []struct {
	name string
	open func(t *testing.T) StateStore
}{
	{"bbolt", func(t *testing.T) StateStore {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"), OpenOptions{})
		must(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"etcd", func(t *testing.T) StateStore {
		s, err := OpenEtcd(testenv.Get(t).EtcdStore(t, "orch-test"), EtcdOptions{})
		must(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
}

func conformance(t *testing.T, fn func(t *testing.T, s StateStore)) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) { fn(t, st.open(t)) })
	}
}

func record(id string) *BlueprintRecord {
	return &BlueprintRecord{ID: id, Main: []string{"/x/main.hcl"}, Sources: map[string]string{"/x/main.hcl": `node "a" {}`}}
}

func TestStoreKeepsDeploymentsTheirInstancesAndBlueprints(t *testing.T) {
	conformance(t, func(t *testing.T, s StateStore) {
		ctx := context.Background()
		d1 := &Deployment{ID: "d1", Blueprint: "bp1", Dir: "/x", Instances: map[string]*workflows.NodeInstance{"a_1": {ID: "a_1", Node: "a", State: "uninitialized"}}}
		must(t, s.CreateDeployment(ctx, record("bp1"), d1))
		if err := s.CreateDeployment(ctx, record("bp1"), d1); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("a second create: %v", err)
		}
		must(t, s.CreateDeployment(ctx, record("bp1"), &Deployment{ID: "d2", Blueprint: "bp1"}))
		must(t, s.PutInstance(ctx, "d1", &workflows.NodeInstance{ID: "a_1", Node: "a", State: "started", Runtime: map[string]any{"ip": "10.0.0.1"}}))
		must(t, s.PutInstances(ctx, "d1", []*workflows.NodeInstance{{ID: "a_2", Node: "a"}, {ID: "a_3", Node: "a"}}))
		must(t, s.DeleteInstances(ctx, "d1", []string{"a_3"}))
		must(t, s.PutOutputs(ctx, "d1", map[string]any{"url": "http://x"}))
		if err := s.PutInstance(ctx, "nope", &workflows.NodeInstance{ID: "x"}); !errors.Is(err, ErrNotFound) {
			t.Errorf("an instance of no deployment: %v", err)
		}
		got, err := s.Deployment(ctx, "d1")
		must(t, err)
		if len(got.Instances) != 2 || got.Instances["a_1"].State != "started" || got.Instances["a_1"].Runtime["ip"] != "10.0.0.1" || got.Outputs["url"] != "http://x" || got.Dir != "/x" {
			t.Errorf("deployment read back: %+v, instances %v", got, got.Instances)
		}
		all, err := s.Deployments(ctx)
		must(t, err)
		if len(all) != 2 || all[0].ID != "d1" || len(all[0].Instances) != 2 {
			t.Errorf("deployments: %d, first %+v", len(all), all[0])
		}
		if _, err := s.Deployment(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a missing deployment: %v", err)
		}
		// A blueprint goes with the last deployment that uses it.
		must(t, s.DeleteDeployment(ctx, "d1"))
		if _, err := s.Blueprint(ctx, "bp1"); err != nil {
			t.Errorf("a blueprint d2 uses is gone: %v", err)
		}
		must(t, s.DeleteDeployment(ctx, "d2"))
		if _, err := s.Blueprint(ctx, "bp1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("an unused blueprint kept: %v", err)
		}
		if err := s.DeleteDeployment(ctx, "d2"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleting a deleted deployment: %v", err)
		}
		// Deployed again under the same id: no instance of before.
		must(t, s.CreateDeployment(ctx, record("bp2"), &Deployment{ID: "d1", Blueprint: "bp2"}))
		if got, _ := s.Deployment(ctx, "d1"); len(got.Instances) != 0 {
			t.Errorf("instances of the deleted deployment came back: %v", got.Instances)
		}
	})
}

func TestStoreSwitchesADeploymentsBlueprintAtOnce(t *testing.T) {
	conformance(t, func(t *testing.T, s StateStore) {
		ctx := context.Background()
		must(t, s.CreateDeployment(ctx, record("old"), &Deployment{ID: "d", Blueprint: "old", Dir: "/a",
			Instances: map[string]*workflows.NodeInstance{"a_1": {ID: "a_1", Node: "a"}, "b_1": {ID: "b_1", Node: "b"}}}))
		u := &workflows.Update{Blueprint: "new", Dir: "/b", Inputs: map[string]json.RawMessage{"n": json.RawMessage("2")}}
		if err := s.SwitchDeployment(ctx, "d", u, nil); err == nil {
			t.Errorf("switched to a blueprint not stored")
		}
		must(t, s.PutBlueprint(ctx, record("new")))
		must(t, s.PutBlueprint(ctx, record("new"))) // twice: kept once
		must(t, s.SwitchDeployment(ctx, "d", u, []*workflows.NodeInstance{{ID: "a_1", Node: "a", State: "started"}, {ID: "c_1", Node: "c"}}))
		d, err := s.Deployment(ctx, "d")
		must(t, err)
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range d.Instances {
				if !yield(id) {
					return
				}
			}
		})
		if d.Blueprint != "new" || d.Dir != "/b" || string(d.Inputs["n"]) != "2" || !slices.Equal(ids, []string{"a_1", "c_1"}) {
			t.Errorf("after the switch: %+v, instances %v", d, ids)
		}
		if _, err := s.Blueprint(ctx, "old"); !errors.Is(err, ErrNotFound) {
			t.Errorf("the old blueprint, unused, kept: %v", err)
		}
	})
}

func TestStoreKeepsExecutionsTheirIndexAndEvents(t *testing.T) {
	conformance(t, func(t *testing.T, s StateStore) {
		ctx := context.Background()
		var xs []*workflows.Execution
		for i, dep := range []string{"d1", "d2", "d1"} {
			x := &workflows.Execution{ID: workflows.NewID(), Deployment: dep, Workflow: fmt.Sprintf("w%d", i), Status: workflows.Queued, CreatedAt: time.Now().UTC()}
			var with *workflows.Record
			if i == 0 {
				with = &workflows.Record{Key: "d1\x00p", Value: map[string]string{"until": "later"}}
			}
			must(t, s.CreateExecution(ctx, x, with))
			xs = append(xs, x)
		}
		if err := s.CreateExecution(ctx, xs[0], nil); err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("an execution created twice: %v", err)
		}
		var ps map[string]string
		if err := s.PolicyState(ctx, "d1\x00p", &ps); err != nil || ps["until"] != "later" {
			t.Errorf("the record stored with the execution: %v %v", ps, err)
		}
		if err := s.PolicyState(ctx, "none", &ps); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing policy state: %v", err)
		}
		ids := func(list []*workflows.Execution) []string {
			var out []string
			for _, x := range list {
				out = append(out, x.ID)
			}
			return out
		}
		if got, _ := s.Unended(ctx, "d1"); !slices.Equal(ids(got), []string{xs[0].ID, xs[2].ID}) {
			t.Errorf("unended of d1: %v", ids(got))
		}
		end := time.Now().Add(-time.Hour).UTC()
		xs[0].Status, xs[0].EndedAt = workflows.Succeeded, &end
		must(t, s.PutExecution(ctx, xs[0]))
		if got, _ := s.Unended(ctx, ""); !slices.Equal(ids(got), []string{xs[1].ID, xs[2].ID}) {
			t.Errorf("unended of all, in creation order: %v", ids(got))
		}
		if got, _ := s.Executions(ctx, "d1"); !slices.Equal(ids(got), []string{xs[0].ID, xs[2].ID}) || got[0].Status != workflows.Succeeded {
			t.Errorf("executions of d1: %v", ids(got))
		}
		if got, err := s.Execution(ctx, xs[1].ID[:14]); err != nil || got.ID != xs[1].ID {
			t.Errorf("by an id prefix: %v %v", got, err)
		}
		if _, err := s.Execution(ctx, xs[0].ID[:2]); err == nil || !strings.Contains(err.Error(), "ambiguous") {
			t.Errorf("an ambiguous prefix: %v", err)
		}
		if _, err := s.Execution(ctx, "zzzz"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a missing execution: %v", err)
		}

		// Events: numbered per execution from 1, whoever appends.
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 5 {
					must(t, s.AppendEvents(ctx, []workflows.Event{{Execution: xs[0].ID, Message: fmt.Sprintf("%d.%d", g, i)}, {Execution: xs[1].ID, Message: "other"}}))
				}
			}()
		}
		wg.Wait()
		evs, err := s.Events(ctx, xs[0].ID, 0)
		must(t, err)
		for i, ev := range evs {
			if ev.Seq != uint64(i+1) {
				t.Fatalf("event %d has seq %d: %+v", i, ev.Seq, evs)
			}
		}
		if len(evs) != 20 {
			t.Errorf("%d events, want 20", len(evs))
		}
		if after, _ := s.Events(ctx, xs[0].ID, 18); len(after) != 2 || after[0].Seq != 19 {
			t.Errorf("events after 18: %+v", after)
		}
		if other, _ := s.Events(ctx, xs[1].ID, 0); len(other) != 20 || other[19].Seq != 20 {
			t.Errorf("the other execution's events: %d", len(other))
		}

		// Pruning: the ended one before the time goes, with its events.
		n, err := s.Prune(ctx, time.Now().Add(-time.Minute))
		must(t, err)
		if _, err := s.Execution(ctx, xs[0].ID); n != 1 || !errors.Is(err, ErrNotFound) {
			t.Errorf("pruned %d; the ended execution: %v", n, err)
		}
		if evs, _ := s.Events(ctx, xs[0].ID, 0); len(evs) != 0 {
			t.Errorf("its events kept: %d", len(evs))
		}
		if _, err := s.Execution(ctx, xs[1].ID); err != nil {
			t.Errorf("an unended execution pruned: %v", err)
		}
	})
}
