package orchestrator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	bolt "go.etcd.io/bbolt"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// noop is a workflow implementation that does nothing.
type noop struct{}

func (noop) Register(r *plugins.Registry) error {
	return r.RegisterWorkflow("test.noop", plugins.WorkflowFunc(func(context.Context, plugins.WorkflowContext) error { return nil }))
}

const latencyBlueprint = `
node "web" {}
workflow "react" { uses = "test.noop" }
policy_type "breach" {
  condition "high" { when = last(window("cpu", "10s")) > 50 }
}
policy "web_cpu" {
  initial_delay = "0s"
  type    = policy_type.breach
  targets = [node.web]
  trigger "high" { workflow = workflow.react }
}
`

// BenchmarkTriggerLatency: from publishing a breaching metric to the real
// broker until its execution is stored as queued (the policy state and the
// execution written to the bbolt state file), one metric at a time; the
// policy has no cooldown, so every metric fires (each once the previous
// run has ended, so none is held back as execution-queued). Reports p50 and p99
// (target: p99 under 3 ms, issue 17).
//
// Its floors are timed beside it, metric by metric: a bare bbolt commit
// (one fsynced write, as a firing's) on the same disk, and a broker round
// trip of a bare consumer (publish to delivery). No trigger is faster
// than the two together; a disk whose commits alone take more than the
// target at p99 cannot meet it.
func BenchmarkTriggerLatency(b *testing.B) {
	rig := newLatencyRig(b, false)
	floors := newLatencyFloors(b, rig.ch)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, rig.fire(b, i))
		b.StopTimer()
		floors.measure(b)
		b.StartTimer()
	}
	b.StopTimer()
	p50, p99, max := quantiles(lat)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(max, "max-ms")
	floors.report(b)
}

// latencyFloors times a bare bbolt commit in the benchmark's directory
// and a bare broker round trip (over the rig's channel, to a queue of its
// own).
type latencyFloors struct {
	db          *bolt.DB
	ch          *amqp.Channel
	queue       string
	deliveries  <-chan amqp.Delivery
	commit, rtt []time.Duration
}

func newLatencyFloors(b *testing.B, ch *amqp.Channel) *latencyFloors {
	e := testenv.Get(b)
	db, err := bolt.Open(filepath.Join(b.TempDir(), "floor.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	_, queue := testenv.AMQPNames(b, e.AMQPURL, "floor")
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	return &latencyFloors{db: db, ch: ch, queue: queue, deliveries: deliveries}
}

// measure times one commit and one round trip.
func (f *latencyFloors) measure(b *testing.B) {
	start := time.Now()
	err := f.db.Update(func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("floor"))
		if err != nil {
			return err
		}
		return bk.Put([]byte("execution"), make([]byte, 512))
	})
	if err != nil {
		b.Fatal(err)
	}
	f.commit = append(f.commit, time.Since(start))
	start = time.Now()
	if err := f.ch.PublishWithContext(context.Background(), "", f.queue, false, false, amqp.Publishing{Body: []byte("floor")}); err != nil {
		b.Fatal(err)
	}
	select {
	case <-f.deliveries:
		f.rtt = append(f.rtt, time.Since(start))
	case <-time.After(10 * time.Second):
		b.Fatal("the floor's message was not delivered")
	}
}

func (f *latencyFloors) report(b *testing.B) {
	c50, c99, _ := quantiles(f.commit)
	r50, r99, _ := quantiles(f.rtt)
	b.ReportMetric(c50, "commit-p50-ms")
	b.ReportMetric(c99, "commit-p99-ms")
	b.ReportMetric(r50, "broker-p50-ms")
	b.ReportMetric(r99, "broker-p99-ms")
}

// BenchmarkTriggerLatencyEtcd: the same, against a replica on the test
// environment's etcd (the firing a fenced transaction, the metric through
// the deployment's own queue), alternating metric by metric with one
// process on bbolt in the same run.
func BenchmarkTriggerLatencyEtcd(b *testing.B) {
	bolt, etcd := newLatencyRig(b, false), newLatencyRig(b, true)
	lb, le := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			lb = append(lb, bolt.fire(b, i))
			le = append(le, etcd.fire(b, i))
		} else {
			le = append(le, etcd.fire(b, i))
			lb = append(lb, bolt.fire(b, i))
		}
	}
	b.StopTimer()
	b50, b99, _ := quantiles(lb)
	e50, e99, emax := quantiles(le)
	b.ReportMetric(b50, "bbolt-p50-ms")
	b.ReportMetric(b99, "bbolt-p99-ms")
	b.ReportMetric(e50, "etcd-p50-ms")
	b.ReportMetric(e99, "etcd-p99-ms")
	b.ReportMetric(emax, "etcd-max-ms")
}

func quantiles(lat []time.Duration) (p50, p99, max float64) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	return q(0.5), q(0.99), float64(lat[len(lat)-1].Microseconds()) / 1000
}

// latencyRig is a manager with the latency blueprint deployed as "web",
// on bbolt or (etcd) as a replica on the test environment's etcd, and a
// channel to its broker.
type latencyRig struct {
	ctx      context.Context
	svc      *Service
	ch       *amqp.Channel
	exchange string
	queued   chan latencyTrigger
}

type latencyTrigger struct {
	at        time.Time
	execution string
}

func newLatencyRig(b *testing.B, etcd bool) *latencyRig {
	e := testenv.Get(b)
	dir := b.TempDir()
	reg := plugins.NewRegistry()
	if err := reg.Add(noop{}); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	exchange, queue := testenv.AMQPNames(b, e.AMQPURL, "bench")
	rig := &latencyRig{exchange: exchange, queued: make(chan latencyTrigger, 1)}
	cfg := ManagerConfig{AMQPURL: e.AMQPURL, Exchange: exchange, Queue: queue, Log: quiet,
		OnTrigger: func(_, _ string, t policies.Trigger) {
			if t.Error != "" {
				b.Error(t.Error)
			}
			rig.queued <- latencyTrigger{time.Now(), t.Execution}
		}}
	if etcd {
		store, err := OpenEtcd(e.EtcdStore(b, "orch-bench"), EtcdOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		r, err := JoinReplicas(context.Background(), store, ReplicaInfo{ID: "bench"}, 10*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = r.Leave() })
		rig.svc = NewService(store.Fenced("bench"), reg, quiet, workflows.WithOwner(r.Starter()))
		cfg.Replica, cfg.ReconcileInterval = r, time.Second
	} else {
		store, err := Open(filepath.Join(dir, "state.db"), OpenOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		rig.svc = NewService(store, reg, quiet)
	}
	mgr := NewManager(rig.svc, cfg, nil)
	bp := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(bp, []byte(latencyBlueprint), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rig.ctx = ctx
	stopped := make(chan struct{})
	go func() { _ = mgr.Run(ctx); close(stopped) }()
	b.Cleanup(func() {
		cancel()
		<-stopped
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_ = mgr.Close(cctx)
	})
	// A replica declares the deployment's queue once its intake is
	// connected: deploy once it runs.
	if _, _, err := mgr.Deploy(ctx, DeployRequest{Paths: []string{bp}, ID: "web"}); err != nil {
		b.Fatal(err)
	}

	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	if rig.ch, err = conn.Channel(); err != nil {
		b.Fatal(err)
	}
	if err := rig.ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	// The intake is up once a first metric comes through (installed
	// first: its execution ends before the policy's can run).
	testenv.WaitFor(b, "the intake", 30*time.Second, func() bool {
		rig.publish(b)
		select {
		case tr := <-rig.queued:
			_, _ = rig.svc.Engine.Wait(ctx, tr.execution)
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	return rig
}

func (rig *latencyRig) publish(b *testing.B) time.Time {
	body := fmt.Sprintf(`{"node_id": "web_1", "node_name": "web", "deployment_id": "web", "name": "cpu", "path": "total", "metric": 95, "unit": "%%", "type": "GAUGE", "host": "h1", "service": "web.web.web_1.cpu.total", "time": %.3f}`,
		float64(time.Now().UnixNano())/1e9)
	start := time.Now()
	if err := rig.ch.PublishWithContext(rig.ctx, rig.exchange, "web", false, false, amqp.Publishing{ContentType: "application/json", Body: []byte(body)}); err != nil {
		b.Fatal(err)
	}
	return start
}

// fire publishes a breach and waits for its execution queued, then for
// it to end (so the next metric finds no run waiting, which would hold
// its trigger back as execution-queued).
func (rig *latencyRig) fire(b *testing.B, i int) time.Duration {
	start := rig.publish(b)
	select {
	case tr := <-rig.queued:
		if _, err := rig.svc.Engine.Wait(rig.ctx, tr.execution); err != nil {
			b.Fatal(err)
		}
		return tr.at.Sub(start)
	case <-time.After(10 * time.Second):
		b.Fatalf("metric %d: no execution queued", i)
		return 0
	}
}
