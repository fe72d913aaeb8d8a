package policies_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
)

// countSink counts the messages applied, per routing key.
type countSink struct {
	mu      sync.Mutex
	applied map[string]int
}

func (c *countSink) SetSource(string, string, string) {}

func (c *countSink) Ingest(_ context.Context, _ []byte, key string) error {
	c.mu.Lock()
	c.applied[key]++
	c.mu.Unlock()
	return nil
}

// ownedReplica is a replica in this process: its membership, and an intake
// that consumes the queues of what it owns (as serve's follow loop has it).
type ownedReplica struct {
	id     string
	rep    *orchestrator.Replica
	store  *orchestrator.EtcdStore
	intake *policies.Intake
	sink   *countSink
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startOwnedReplica(t *testing.T, storeURL, amqpURL, exchange, base, id string, ttl time.Duration) *ownedReplica {
	t.Helper()
	s, err := orchestrator.OpenEtcd(storeURL, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := orchestrator.JoinReplicas(context.Background(), s, orchestrator.ReplicaInfo{ID: id}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &ownedReplica{id: id, rep: rep, store: s, sink: &countSink{applied: map[string]int{}}, cancel: cancel}
	r.intake = &policies.Intake{URL: amqpURL, Exchange: exchange, Queue: base, Owner: rep, Sink: r.sink,
		Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, AckDelay: 5 * time.Millisecond}
	r.wg.Add(3)
	go func() { defer r.wg.Done(); _ = rep.Run(ctx, ttl/4) }()
	go func() { defer r.wg.Done(); _ = r.intake.Run(ctx) }()
	go func() {
		defer r.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-rep.Lost():
				r.intake.Consume(nil)
				return
			case owned := <-rep.Changes():
				r.intake.Consume(owned)
			}
		}
	}()
	t.Cleanup(r.crash)
	return r
}

// crash ends the replica as SIGKILL would: nothing more acknowledged, its
// lease left to expire.
func (r *ownedReplica) crash() {
	r.intake.CrashForTest()
	r.cancel()
	r.wg.Wait()
	_ = r.store.Close()
}

// Replicas consume each deployment's own queue: while the deployments
// move (a replica crashes, another loses its lease while it runs on, a new
// one joins), every metric published is applied and acknowledged exactly
// once, by whoever owned its deployment then; none is lost, none counted
// twice.
func TestReplicasApplyEveryMetricPublishedDuringFailoversOnce(t *testing.T) {
	e := testenv.Get(t)
	storeURL := e.EtcdStore(t, "orch-owned-intake")
	exchange, base := testenv.AMQPNames(t, e.AMQPURL, "owned")
	admin, err := orchestrator.OpenEtcd(storeURL, orchestrator.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	bp := &orchestrator.BlueprintRecord{ID: "bp", Main: []string{"/x/main.hcl"}, Sources: map[string]string{"/x/main.hcl": `node "a" {}`}}
	var deps []string
	for i := range 12 {
		d := fmt.Sprintf("dep%02d", i)
		deps = append(deps, d)
		if err := admin.CreateDeployment(ctx, bp, &orchestrator.Deployment{ID: d, Blueprint: "bp"}); err != nil {
			t.Fatal(err)
		}
	}
	ttl := 2 * time.Second
	reps := []*ownedReplica{}
	for i := range 3 {
		reps = append(reps, startOwnedReplica(t, storeURL, e.AMQPURL, exchange, base, fmt.Sprintf("r%d", i), ttl))
	}
	t.Cleanup(func() {
		conn, err := amqp.Dial(e.AMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		for _, d := range deps {
			_, _ = ch.QueueDelete(policies.DeploymentQueue(base, d), false, false, false)
		}
	})
	// Deploying declares each deployment's queue (any replica does).
	for _, d := range deps {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := reps[0].intake.Declare(dctx, d); err != nil {
			t.Fatal(err)
		}
		cancel()
	}

	// A publisher with confirms and mandatory routing: a message no queue
	// took comes back, and is counted as lost.
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	returned := pch.NotifyReturn(make(chan amqp.Return, 1024))
	published := map[string]int{}
	stopPub := make(chan struct{})
	pubDone := make(chan error, 1)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-stopPub:
				pubDone <- nil
				return
			default:
			}
			d := deps[n%len(deps)]
			c, err := pch.PublishWithDeferredConfirmWithContext(ctx, exchange, d, true, false,
				amqp.Publishing{Body: []byte(fmt.Sprintf(`{"name":"m","value":%d,"time":%d}`, n, time.Now().Unix()))})
			if err != nil {
				pubDone <- err
				return
			}
			if ok, err := c.WaitContext(ctx); err != nil || !ok {
				pubDone <- fmt.Errorf("publish %d not confirmed: %v", n, err)
				return
			}
			published[d]++
			time.Sleep(time.Millisecond)
		}
	}()

	owned := func(live []*ownedReplica) bool {
		seen := 0
		for _, r := range live {
			seen += len(r.rep.Owned())
		}
		return seen == len(deps)
	}
	testenv.WaitFor(t, "every deployment owned", 20*time.Second, func() bool { return owned(reps) })
	time.Sleep(500 * time.Millisecond)

	// r0 crashes.
	reps[0].crash()
	testenv.WaitFor(t, "r0's deployments owned again", 20*time.Second, func() bool { return owned(reps[1:]) })
	time.Sleep(300 * time.Millisecond)
	// r1 loses its lease while it goes on running (a pause past the TTL,
	// then it wakes up): it must stop applying its deployments' metrics.
	if _, err := admin.Client().Revoke(ctx, reps[1].rep.Lease()); err != nil {
		t.Fatal(err)
	}
	r3 := startOwnedReplica(t, storeURL, e.AMQPURL, exchange, base, "r3", ttl)
	live := []*ownedReplica{reps[2], r3}
	testenv.WaitFor(t, "r1's deployments owned by r2 and r3", 20*time.Second, func() bool { return owned(live) })
	testenv.WaitFor(t, "r1 knows it lost its deployments", 10*time.Second, func() bool { return len(reps[1].rep.Owned()) == 0 })
	r1Acked := func() (n int64) {
		for _, d := range deps {
			n += reps[1].intake.Acked(d)
		}
		return n
	}
	r1Before := r1Acked()
	time.Sleep(500 * time.Millisecond)
	close(stopPub)
	if err := <-pubDone; err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returned:
		t.Fatalf("a metric no queue took: routing key %s", r.RoutingKey)
	default:
	}

	all := append(reps, r3)
	acked := func() map[string]int64 {
		out := map[string]int64{}
		for _, r := range all {
			for _, d := range deps {
				out[d] += r.intake.Acked(d)
			}
		}
		return out
	}
	testenv.WaitFor(t, "every published metric acknowledged", 20*time.Second, func() bool {
		a := acked()
		for _, d := range deps {
			if a[d] < int64(published[d]) {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a duplicate would show now
	a, total := acked(), 0
	for _, d := range deps {
		total += published[d]
		if a[d] != int64(published[d]) {
			t.Errorf("%s: %d published, %d applied and acknowledged", d, published[d], a[d])
		}
	}
	t.Logf("%d metrics over %d deployments through a crash, a lost lease and a join: published = applied", total, len(deps))
	// The replica that lost its lease applied none after: what it applied
	// it acknowledged while it owned the deployments (else they would count
	// twice above).
	if n := r1Acked(); n != r1Before {
		t.Errorf("r1 applied and acknowledged %d metrics after it lost its lease", n-r1Before)
	}
	if len(reps[1].rep.Owned()) != 0 {
		t.Errorf("r1 still owns %v after its lease was revoked", reps[1].rep.Owned())
	}
}

// lapsingOwner owns its deployments, but not for its first few answers (a
// lease renewal late for a moment).
type lapsingOwner struct {
	mu    sync.Mutex
	lapse int
}

func (o *lapsingOwner) Owns(string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lapse > 0 {
		o.lapse--
		return false
	}
	return true
}

// A delivery refused while ownership lapsed for a moment stops the
// deployment's consumer; once owned again, with no Consume call (nothing
// changed), it is consumed again and every message is applied.
func TestOwnedIntakeConsumesAgainAfterOwnershipLapsed(t *testing.T) {
	e := testenv.Get(t)
	exchange, base := testenv.AMQPNames(t, e.AMQPURL, "lapse")
	sink := &countSink{applied: map[string]int{}}
	in := &policies.Intake{URL: e.AMQPURL, Exchange: exchange, Queue: base, Owner: &lapsingOwner{lapse: 3}, Sink: sink,
		Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, AckDelay: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := in.Declare(ctx, "lapsed"); err != nil {
		t.Fatal(err)
	}
	in.Consume([]string{"lapsed"})
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = ch.QueueDelete(policies.DeploymentQueue(base, "lapsed"), false, false, false) }()
	for i := 0; i < 5; i++ {
		body := fmt.Sprintf(`{"deployment_id":"lapsed","node_name":"web","node_id":"web","host":"h","name":"cpu","metric":%d,"time":%d}`, i, 1700000000+i)
		if err := ch.PublishWithContext(ctx, exchange, "lapsed", false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "the five messages applied after the lapse", 15*time.Second, func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.applied["lapsed"] == 5
	})
}
