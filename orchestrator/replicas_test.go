package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/workflows"
)

func TestRendezvousMovesOnlyTheShareOfAReplicaThatJoins(t *testing.T) {
	three, four := []string{"a", "b", "c"}, []string{"a", "b", "c", "d"}
	moved, toNew := 0, 0
	for i := range 1000 {
		dep := fmt.Sprintf("dep%d", i)
		before, after := Rendezvous(dep, three), Rendezvous(dep, four)
		if before != after {
			moved++
			if after == "d" {
				toNew++
			}
		}
	}
	if moved != toNew || moved < 180 || moved > 320 {
		t.Errorf("%d of 1000 moved (%d to the new replica), want about 250, all to it", moved, toNew)
	}
	if Rendezvous("x", nil) != "" {
		t.Errorf("an owner among no replicas")
	}
}

// replica is a replica in this process, with a client of its own (as a
// process of its own would have).
type testReplica struct {
	*Replica
	store  *EtcdStore
	cancel context.CancelFunc
	done   chan error
}

func startReplica(t *testing.T, url, id string, ttl time.Duration) *testReplica {
	t.Helper()
	s, err := OpenEtcd(url, EtcdOptions{})
	must(t, err)
	r, err := JoinReplicas(context.Background(), s, ReplicaInfo{ID: id}, ttl)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	tr := &testReplica{Replica: r, store: s, cancel: cancel, done: make(chan error, 1)}
	go func() { tr.done <- r.Run(ctx, 100*time.Millisecond) }()
	t.Cleanup(func() { tr.kill() })
	return tr
}

// kill stops the replica as a crash would: no goodbye, its lease left to
// expire.
func (r *testReplica) kill() {
	r.cancel()
	_ = r.store.Close()
}

// owners reads owners/ directly: deployment -> replica.
func owners(t *testing.T, s *EtcdStore) map[string]string {
	t.Helper()
	resp, err := s.Client().Get(context.Background(), s.key("owners")+"/", clientv3.WithPrefix())
	must(t, err)
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), s.key("owners")+"/")] = string(kv.Value)
	}
	return out
}

func TestReplicasShareDeploymentsOutAndTakeOverWhenOneDies(t *testing.T) {
	url := testenv.Get(t).EtcdStore(t, "orch-replicas")
	admin, err := OpenEtcd(url, EtcdOptions{})
	must(t, err)
	defer admin.Close()
	ctx := context.Background()
	var deps []string
	for i := range 30 {
		d := fmt.Sprintf("dep%02d", i)
		deps = append(deps, d)
		must(t, admin.CreateDeployment(ctx, record("bp"), &Deployment{ID: d, Blueprint: "bp"}))
	}
	ttl := 2 * time.Second
	reps := []*testReplica{startReplica(t, url, "r0", ttl), startReplica(t, url, "r1", ttl), startReplica(t, url, "r2", ttl)}
	spread := func(live []*testReplica) bool {
		seen := map[string]int{}
		for _, r := range live {
			owned := r.Owned()
			if len(owned) == 0 {
				return false
			}
			for _, d := range owned {
				seen[d]++
			}
		}
		if len(seen) != len(deps) {
			return false
		}
		for _, n := range seen {
			if n != 1 {
				return false
			}
		}
		o := owners(t, admin)
		return len(o) == len(deps)
	}
	// Replicas joining one after the other hand deployments over: what
	// each owns is checked once that has settled (every deployment owned
	// once, and by its rendezvous replica), not at the first moment each
	// is owned once.
	rendezvous := func() bool {
		for _, r := range reps {
			want := 0
			for _, d := range deps {
				if Rendezvous(d, []string{"r0", "r1", "r2"}) == r.Info.ID {
					want++
				}
			}
			if len(r.Owned()) != want {
				return false
			}
		}
		return true
	}
	testenv.WaitFor(t, "every deployment owned by exactly one of 3 replicas, its rendezvous one", 20*time.Second, func() bool { return spread(reps) && rendezvous() })
	// The listing is each replica's registration, renewed as it reconciles.
	testenv.WaitFor(t, "the 3 replicas listed with their 30 deployments", 20*time.Second, func() bool {
		st, err := admin.Replicas(ctx)
		must(t, err)
		return len(st) == 3 && st[0].LeaseTTL > 0 && len(st[0].Deployments)+len(st[1].Deployments)+len(st[2].Deployments) == 30
	})

	// r0 dies: its deployments are owned again once its lease expires.
	lost := reps[0].Owned()
	killed := time.Now()
	reps[0].kill()
	testenv.WaitFor(t, "r0's deployments owned by r1 and r2", 20*time.Second, func() bool { return spread(reps[1:]) })
	took := time.Since(killed)
	t.Logf("failover of %d deployments after a kill: %s (TTL %s)", len(lost), took.Round(10*time.Millisecond), ttl)
	if took > ttl+5*time.Second {
		t.Errorf("failover took %s with a TTL of %s", took, ttl)
	}
	o := owners(t, admin)
	for _, d := range lost {
		if o[d] == "r0" || o[d] == "" {
			t.Errorf("%s owned by %q after r0 died", d, o[d])
		}
	}

	// A replica joining takes its share from the others.
	r3 := startReplica(t, url, "r3", ttl)
	testenv.WaitFor(t, "r3 takes its share", 20*time.Second, func() bool { return spread([]*testReplica{reps[1], reps[2], r3}) })
	if _, err := JoinReplicas(ctx, admin, ReplicaInfo{ID: "r3"}, ttl); err == nil {
		t.Errorf("a second replica r3 registered")
	}
}

// A replica paused past its TTL (here: its lease revoked, as its expiry
// would) loses its deployments to another; every write it then makes for
// them is refused, and counted.
func TestAReplicaThatLostOwnershipCannotWrite(t *testing.T) {
	url := testenv.Get(t).EtcdStore(t, "orch-replicas")
	admin, err := OpenEtcd(url, EtcdOptions{})
	must(t, err)
	defer admin.Close()
	ctx := context.Background()
	dep := ""
	for i := 0; dep == ""; i++ {
		if d := fmt.Sprintf("d%d", i); Rendezvous(d, []string{"a", "b"}) == "a" {
			dep = d
		}
	}
	must(t, admin.CreateDeployment(ctx, record("bp"), &Deployment{ID: dep, Blueprint: "bp"}))
	a := startReplica(t, url, "a", 2*time.Second)
	b := startReplica(t, url, "b", 2*time.Second)
	testenv.WaitFor(t, "a owns "+dep, 20*time.Second, func() bool { return slices.Equal(a.Owned(), []string{dep}) })
	fa, fb := a.store.Fenced("a"), b.store.Fenced("b")
	x := &workflows.Execution{ID: workflows.NewID(), Deployment: dep, Workflow: "scale", Status: workflows.Queued}
	must(t, fa.CreateExecution(ctx, x, &workflows.Record{Key: "policy/" + dep + "/p", Value: map[string]int{"n": 1}}))
	must(t, fa.PutInstance(ctx, dep, &workflows.NodeInstance{ID: "i1", Node: "n"}))
	must(t, fa.AppendEvents(ctx, []workflows.Event{{Execution: x.ID, Type: workflows.EventLog, Message: "by a, the owner"}}))
	if err := fb.PutInstance(ctx, dep, &workflows.NodeInstance{ID: "i2", Node: "n"}); !errors.Is(err, ErrFenced) {
		t.Errorf("b wrote for a's deployment: %v", err)
	}

	// a is paused: its lease goes; b takes the deployment.
	a.cancel()
	_, err = admin.Client().Revoke(ctx, a.sess.Lease())
	must(t, err)
	testenv.WaitFor(t, "b owns "+dep, 20*time.Second, func() bool { return slices.Equal(b.Owned(), []string{dep}) })

	// a wakes up and writes as if it still owned it: refused, all.
	before := fa.Refused.Load()
	x.Status = workflows.Started
	writes := []error{
		fa.PutExecution(ctx, x),
		fa.CreateExecution(ctx, &workflows.Execution{ID: workflows.NewID(), Deployment: dep, Workflow: "scale", Status: workflows.Queued},
			&workflows.Record{Key: "policy/" + dep + "/p", Value: map[string]int{"n": 3}}),
		fa.PutInstance(ctx, dep, &workflows.NodeInstance{ID: "i1", Node: "n", State: "started"}),
		fa.PutPolicyState(ctx, "policy/"+dep+"/p", map[string]int{"n": 2}),
		fa.DeleteInstances(ctx, dep, []string{"i1"}),
		fa.PutOutputs(ctx, dep, map[string]any{"url": "stale"}),
		fa.SwitchDeployment(ctx, dep, &workflows.Update{Blueprint: "bp"}, nil),
	}
	for i, err := range writes {
		if !errors.Is(err, ErrFenced) {
			t.Errorf("write %d of the replica that lost ownership: %v", i, err)
		}
	}
	// Its events are refused too (counted, not kept), while b's of the
	// same execution are written, sequenced after a's.
	must(t, fa.AppendEvents(ctx, []workflows.Event{{Execution: x.ID, Type: workflows.EventLog, Message: "by a, no longer the owner"}}))
	must(t, fb.AppendEvents(ctx, []workflows.Event{{Execution: x.ID, Type: workflows.EventLog, Message: "by b, the new owner"}}))
	if n := fa.Refused.Load() - before; n != int64(len(writes))+1 {
		t.Errorf("%d refused writes counted, want %d", n, len(writes)+1)
	}
	evs, err := admin.Events(ctx, x.ID, 0)
	must(t, err)
	var msgs []string
	for _, ev := range evs {
		msgs = append(msgs, fmt.Sprintf("%d %s", ev.Seq, ev.Message))
	}
	if want := []string{"1 by a, the owner", "2 by b, the new owner"}; !slices.Equal(msgs, want) {
		t.Errorf("events %q, want %q", msgs, want)
	}
	got, err := admin.Execution(ctx, x.ID)
	must(t, err)
	var ps map[string]int
	must(t, admin.PolicyState(ctx, "policy/"+dep+"/p", &ps))
	if got.Status != workflows.Queued || ps["n"] != 1 {
		t.Errorf("a fenced write went through: execution %s, policy state %v", got.Status, ps)
	}
	if d, err := admin.Deployment(ctx, dep); err != nil || d.Instances["i1"] == nil || d.Instances["i1"].State != "" || d.Outputs["url"] == "stale" {
		t.Errorf("a fenced write went through: %+v %v", d, err)
	}
	must(t, fb.PutExecution(ctx, x))
	names := []string{}
	for d := range owners(t, admin) {
		names = append(names, d)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{dep}) {
		t.Errorf("owners %v", names)
	}
}

// A deployment that hashes to a replica joining stays with its owner
// while an execution of it runs there (nothing new starts for it
// meanwhile), and moves once that one has ended; past HandOverWait it
// moves anyway.
func TestAHandOverWaitsForTheRunningExecution(t *testing.T) {
	url := testenv.Get(t).EtcdStore(t, "orch-handover")
	admin, err := OpenEtcd(url, EtcdOptions{})
	must(t, err)
	defer admin.Close()
	ctx := context.Background()
	var deps []string
	for i := 0; len(deps) < 2; i++ {
		if d := fmt.Sprintf("d%d", i); Rendezvous(d, []string{"a", "b"}) == "b" {
			deps = append(deps, d)
			must(t, admin.CreateDeployment(ctx, record("bp"), &Deployment{ID: d, Blueprint: "bp"}))
		}
	}
	running, stuck := deps[0], deps[1]
	a := startReplica(t, url, "a", 2*time.Second)
	testenv.WaitFor(t, "a owns both", 20*time.Second, func() bool { return slices.Equal(a.Owned(), deps) })
	for _, d := range deps {
		if a.Starter().Owns(d) {
			t.Errorf("a starts executions of %s before taking it up", d)
		}
		a.TakeUp(d, true)
		if !a.Starter().Owns(d) {
			t.Errorf("a does not start executions of %s, taken up", d)
		}
	}
	var busy sync.Map
	busy.Store(running, true)
	busy.Store(stuck, true)
	a.HandOverWait = 2 * time.Second
	a.HoldHandOvers(func(d string) bool { v, _ := busy.Load(d); return v == true })
	started := time.Now()

	b := startReplica(t, url, "b", 2*time.Second)
	time.Sleep(time.Second)
	if got := owners(t, admin); got[running] != "a" || got[stuck] != "a" {
		t.Fatalf("moved while executions ran: %v", got)
	}
	if a.Starter().Owns(running) || !a.Owns(running) {
		t.Errorf("a handing %s over: starts new executions %v, owns %v; want false, true", running, a.Starter().Owns(running), a.Owns(running))
	}
	busy.Store(running, false)
	testenv.WaitFor(t, "b owns "+running+" once its execution ended", 20*time.Second, func() bool { return owners(t, admin)[running] == "b" })
	if owners(t, admin)[stuck] != "a" && time.Since(started) < 2*time.Second {
		t.Errorf("%s moved before HandOverWait while busy", stuck)
	}
	testenv.WaitFor(t, "b owns "+stuck+" after HandOverWait", 20*time.Second, func() bool { return owners(t, admin)[stuck] == "b" })
	if d := time.Since(started); d < 2*time.Second {
		t.Errorf("%s moved after %s, before HandOverWait (2s)", stuck, d)
	}
	testenv.WaitFor(t, "b knows", 20*time.Second, func() bool { return slices.Equal(b.Owned(), deps) })
}
