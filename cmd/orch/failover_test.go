package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/policies/producer"
	"github.com/orchhq/orch/workflows"
)

// failoverRig is three replicas of orch serve on an etcd store of their
// own, and n deployments of testdata/failover.hcl, d0..dN-1, each scaling
// its own Deployment app0..appN-1 of one namespace on the primary cluster
// and recording each run of its workflow in one journal.
type failoverRig struct {
	t               *testing.T
	e               *testenv.Env
	store, state    string
	journal         string
	args            []string // serve's, without --replica-id
	ids             []string
	serves          map[string]*serveProc
	admin           *orchestrator.EtcdStore
	cs              kubernetes.Interface
	ns              string
	pub             *producer.Publisher
	deps            []string
	fires           map[string]int       // firings caused, per deployment
	lastFire        map[string]time.Time // the latest, per deployment
	cooldown        time.Duration
	exchange, queue string
}

func newFailoverRig(t *testing.T, n int, cooldown time.Duration) *failoverRig {
	e := testenv.Get(t)
	tmp := t.TempDir()
	f := &failoverRig{t: t, e: e, store: e.EtcdStore(t, "orch-failover"), state: filepath.Join(tmp, "unused.db"),
		journal: filepath.Join(tmp, "journal"), ids: []string{"r0", "r1", "r2"}, serves: map[string]*serveProc{},
		fires: map[string]int{}, lastFire: map[string]time.Time{}, cooldown: cooldown}
	f.exchange, f.queue = testenv.AMQPNames(t, e.AMQPURL, "failover")
	f.args = []string{"--store", f.store, "--lease-ttl", "2s", "--api-token-file", sharedToken(t, tmp),
		"--amqp-url", e.AMQPURL, "--exchange", f.exchange, "--queue", f.queue}
	var err error
	if f.admin, err = orchestrator.OpenEtcd(f.store, orchestrator.EtcdOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close() })
	f.cs = e.Clientset(t, testenv.Primary)
	f.ns = testenv.Namespace(t, f.cs, "failover")
	for _, id := range f.ids {
		f.start(id)
	}
	t.Cleanup(func() {
		for id, sv := range f.serves {
			if t.Failed() {
				out := sv.output()
				t.Logf("replica %s's output (its last 6000 bytes):\n%s", id, out[max(0, len(out)-6000):])
			}
			_ = sv.cmd.Process.Signal(syscall.SIGCONT)
			_ = sv.cmd.Process.Kill()
			_ = sv.cmd.Wait()
		}
	})
	for i := range n {
		dep, app := fmt.Sprintf("d%d", i), fmt.Sprintf("app%d", i)
		testenv.CreateDeployment(t, f.cs, f.ns, app, 1)
		if r := orch(t, f.state, "--store", f.store, "deploy", "testdata/failover.hcl", "-d", dep, "-i", "kubeconfig="+e.Kubeconfig,
			"-i", "namespace="+f.ns, "-i", "app="+app, "-i", "journal="+f.journal, "-i", "cooldown="+cooldown.String()); r.code != 0 {
			t.Fatalf("deploy %s: exit %d\n%s%s", dep, r.code, r.stdout, r.stderr)
		}
		f.deps = append(f.deps, dep)
	}
	f.waitSpread()
	for _, dep := range f.deps {
		testenv.WaitFor(t, dep+" installed", 30*time.Second, func() bool {
			xs, err := f.admin.Executions(context.Background(), dep)
			return err == nil && len(xs) == 1 && xs[0].Status == workflows.Succeeded
		})
	}
	if f.pub, err = producer.Dial(e.AMQPURL, f.exchange); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.pub.Close() })
	return f
}

func (f *failoverRig) start(id string) {
	f.serves[id] = startServe(f.t, f.state, append([]string{"--replica-id", id}, f.args...)...)
}

// owners is who owns each deployment, and the live replicas.
func (f *failoverRig) owners() (map[string]string, []string) {
	owner, apis := replicaOwners(f.t, f.admin)
	return owner, slices.Sorted(maps.Keys(apis))
}

// replicaOwners reads the store's replicas: the owner of each deployment,
// and each replica's advertised API.
func replicaOwners(t *testing.T, admin *orchestrator.EtcdStore) (owner, apiOf map[string]string) {
	t.Helper()
	reps, err := admin.Replicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	owner, apiOf = map[string]string{}, map[string]string{}
	for _, r := range reps {
		apiOf[r.ID] = r.API
		for _, d := range r.Deployments {
			owner[d] = r.ID
		}
	}
	return owner, apiOf
}

// waitSpread waits until the three replicas are live and every
// deployment is owned where rendezvous hashing puts it.
func (f *failoverRig) waitSpread() {
	f.t.Helper()
	testenv.WaitFor(f.t, "every deployment owned where it hashes, by three replicas", 30*time.Second, func() bool {
		owner, live := f.owners()
		if !slices.Equal(live, f.ids) {
			return false
		}
		for _, d := range f.deps {
			if owner[d] != orchestrator.Rendezvous(d, live) {
				return false
			}
		}
		return true
	})
}

// ownedBy lists the deployments a replica owns, those whose cooldown has
// long ended first.
func (f *failoverRig) ownedBy(id string) []string {
	owner, _ := f.owners()
	var out []string
	for _, d := range f.deps {
		if owner[d] == id && time.Since(f.lastFire[d]) > f.cooldown+3*time.Second {
			out = append(out, d)
		}
	}
	return out
}

// breach publishes a cpu sample of 95 (above 70) for a deployment's web.
func (f *failoverRig) breach(dep string) {
	f.t.Helper()
	m := producer.Metric{DeploymentID: dep, NodeName: "web", NodeID: "web", Host: "h1", Name: "cpu", Path: "total", Value: 95, Time: policies.Seconds(time.Now())}
	if err := f.pub.Publish(context.Background(), m); err != nil {
		f.t.Fatal(err)
	}
}

var ranLine = regexp.MustCompile(`^ran (\S+) (\S+)$`)

// runs are the executions the journal recorded, per deployment (an
// execution recorded twice is listed twice).
func (f *failoverRig) runs() map[string][]string {
	b, err := os.ReadFile(f.journal)
	if err != nil && !os.IsNotExist(err) {
		f.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if m := ranLine.FindStringSubmatch(l); m != nil {
			out[m[2]] = append(out[m[2]], m[1])
		}
	}
	return out
}

// fire waits until one more execution of a deployment's workflow than it
// was caused to has run, and counts it.
func (f *failoverRig) fire(dep, why string) {
	f.t.Helper()
	// Executions, not runs: a recovered one may record its step again.
	testenv.WaitFor(f.t, dep+" fires: "+why, 30*time.Second, func() bool {
		return len(slices.Compact(slices.Sorted(slices.Values(f.runs()[dep])))) >= f.fires[dep]+1
	})
	f.fires[dep]++
	f.lastFire[dep] = time.Now()
}

// reowned waits until none of deps is owned by gone, and says how long
// that took since from.
func (f *failoverRig) reowned(gone string, deps []string, from time.Time) time.Duration {
	f.t.Helper()
	testenv.WaitFor(f.t, gone+"'s deployments owned again", 30*time.Second, func() bool {
		owner, _ := f.owners()
		for _, d := range deps {
			if o := owner[d]; o == "" || o == gone {
				return false
			}
		}
		return true
	})
	return time.Since(from)
}

// executions are a deployment's scale_up executions.
func (f *failoverRig) executions(dep string) []*workflows.Execution {
	xs, err := f.admin.Executions(context.Background(), dep)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*workflows.Execution
	for _, x := range xs {
		if x.Workflow == "scale_up" {
			out = append(out, x)
		}
	}
	return out
}

// checkOnce checks that every firing made one execution, that ended; that
// the app was scaled once per execution that succeeded (a workflow run
// twice would scale twice); and that only a recovered execution recorded
// more than one run.
func (f *failoverRig) checkOnce() {
	f.t.Helper()
	for _, dep := range f.deps {
		testenv.WaitFor(f.t, dep+"'s executions ended", 30*time.Second, func() bool {
			for _, x := range f.executions(dep) {
				if !x.Status.Ended() {
					return false
				}
			}
			return true
		})
	}
	runs := f.runs()
	for i, dep := range f.deps {
		xs := f.executions(dep)
		if len(xs) != f.fires[dep] {
			f.t.Errorf("%s: %d executions for %d firings", dep, len(xs), f.fires[dep])
		}
		succeeded := 0
		for _, x := range xs {
			n := 0
			for _, id := range runs[dep] {
				if id == x.ID {
					n++
				}
			}
			if x.Status == workflows.Succeeded {
				succeeded++
			}
			if n > 1 && x.Resumes == 0 {
				f.t.Errorf("%s: execution %s (%s, never resumed) recorded %d runs", dep, x.ID, x.Status, n)
			}
		}
		app := fmt.Sprintf("app%d", i)
		if got := replicasOf(f.t, f.cs, f.ns, app); int(got) != 1+succeeded {
			var what []string
			for _, x := range xs {
				what = append(what, fmt.Sprintf("%s %s (%d resumes) %s", x.ID, x.Status, x.Resumes, x.Error))
			}
			f.t.Errorf("%s: %s has %d replicas after %d succeeded executions (%d firings): a workflow ran twice, or not at all: %s", dep, app, got, succeeded, f.fires[dep], strings.Join(what, "; "))
		}
	}
}

// failovers is how many a test forces: ORCH_FAILOVERS, or def.
func failovers(t *testing.T, def int) int {
	if v := os.Getenv("ORCH_FAILOVERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("ORCH_FAILOVERS=%q: want a count", v)
		}
		return n
	}
	return def
}

// Acceptance of replicas on etcd: 3 replicas, 30 deployments with a scale
// policy on the primary cluster, each owned by exactly one replica. Each
// of 20 SIGKILLs of a replica (ORCH_FAILOVERS for more): its deployments
// are owned again within 15s; a cooldown started just before the kill
// holds after it (breaches during and after the failover scale nothing);
// breaches during the failover fire exactly once, on the new owner.
func TestReplicaSIGKILLFailovers(t *testing.T) {
	kills := failovers(t, 20)
	f := newFailoverRig(t, 30, 30*time.Second)
	var took []time.Duration
	for k := range kills {
		victim := f.ids[k%len(f.ids)]
		var own []string
		testenv.WaitFor(t, victim+" owns two deployments out of their cooldown", 60*time.Second, func() bool {
			own = f.ownedBy(victim)
			return len(own) >= 2
		})
		cooling, breached := own[0], own[1]
		f.breach(cooling)
		f.fire(cooling, "a breach before the kill")
		testenv.WaitFor(t, cooling+"'s execution succeeded", 30*time.Second, func() bool {
			xs := f.executions(cooling)
			return len(xs) == f.fires[cooling] && xs[len(xs)-1].Status == workflows.Succeeded
		})
		owner, _ := f.owners()
		var lost []string
		for d, o := range owner {
			if o == victim {
				lost = append(lost, d)
			}
		}

		killed := time.Now()
		_ = f.serves[victim].cmd.Process.Signal(syscall.SIGKILL)
		_ = f.serves[victim].cmd.Wait()
		for range 3 {
			f.breach(breached)
		}
		f.breach(cooling)
		d := f.reowned(victim, lost, killed)
		took = append(took, d)
		if d > 15*time.Second {
			t.Errorf("kill %d: %s's deployments owned again after %s, over 15s", k, victim, d)
		}
		f.fire(breached, "breaches during the failover")
		f.breach(cooling)
		f.breach(breached)
		f.start(victim)
		f.waitSpread()
	}
	time.Sleep(time.Second) // what a double firing would run, runs
	f.checkOnce()
	slices.Sort(took)
	t.Logf("%d SIGKILLs of a replica (lease TTL 2s): deployments owned again after p50 %s, max %s",
		len(took), took[len(took)/2].Round(10*time.Millisecond), took[len(took)-1].Round(10*time.Millisecond))
}

var refusedLine = regexp.MustCompile(`replica \S+ stopped; (\d+) writes refused`)

// Acceptance of fencing: forced failovers (24; ORCH_FAILOVERS=100 for the
// acceptance run), half SIGKILL, half SIGSTOP past the lease's TTL then
// SIGCONT (the paused owner), each while the owner runs a firing's
// workflow (held in its first step). The next owner recovers the
// execution; the paused one, woken, has every write it attempts refused
// (counted: at least the end of the step it was in), runs nothing more,
// and exits for lack of a lease. No firing runs twice: one execution per
// firing, and one scale per execution that succeeded.
func TestReplicaFailoversPausedOrKilledRunNothingTwice(t *testing.T) {
	n := failovers(t, 24)
	f := newFailoverRig(t, 12, 5*time.Second)
	hold := f.journal + ".hold"
	var took []time.Duration
	refused, stops := 0, 0
	for k := range n {
		victim := f.ids[k%len(f.ids)]
		pause := k%2 == 1
		var own []string
		testenv.WaitFor(t, victim+" owns a deployment out of its cooldown", 60*time.Second, func() bool {
			own = f.ownedBy(victim)
			return len(own) >= 1
		})
		dep := own[0]
		if err := os.WriteFile(hold, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		f.breach(dep)
		f.fire(dep, "a breach before the failover")
		owner, _ := f.owners()
		var lost []string
		for d, o := range owner {
			if o == victim {
				lost = append(lost, d)
			}
		}
		sv := f.serves[victim]
		from := time.Now()
		if pause {
			_ = sv.cmd.Process.Signal(syscall.SIGSTOP)
		} else {
			_ = sv.cmd.Process.Signal(syscall.SIGKILL)
			_ = sv.cmd.Wait()
		}
		took = append(took, f.reowned(victim, lost, from))
		// The held step ends on the old owner's machine (a script outlives
		// orch) and, recovered, on the new owner.
		if err := os.Remove(hold); err != nil {
			t.Fatal(err)
		}
		if pause {
			_ = sv.cmd.Process.Signal(syscall.SIGCONT)
			done := make(chan error, 1)
			go func() { done <- sv.cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Errorf("failover %d: %s exited 0 after losing its lease", k, victim)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("failover %d: %s, woken without a lease, did not stop\n%s", k, victim, sv.output())
			}
			m := refusedLine.FindStringSubmatch(sv.output())
			if m == nil {
				t.Fatalf("failover %d: %s did not say how many writes it had refused\n%s", k, victim, sv.output())
			}
			c, _ := strconv.Atoi(m[1])
			if c == 0 {
				t.Errorf("failover %d: %s, woken in a step of %s it no longer owns, had no write refused\n%s", k, victim, dep, sv.output())
			}
			refused += c
			stops++
		}
		f.start(victim)
		f.waitSpread()
	}
	time.Sleep(time.Second)
	f.checkOnce()
	slices.Sort(took)
	t.Logf("%d failovers (%d SIGSTOP past the 2s TTL then SIGCONT, %d SIGKILL), each during a workflow: owned again after p50 %s, max %s; the paused owners had %d writes refused",
		n, stops, n-stops, took[len(took)/2].Round(10*time.Millisecond), took[len(took)-1].Round(10*time.Millisecond), refused)
}
