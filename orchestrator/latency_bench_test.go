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

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/plugins"
	"github.com/orchhq/orch/policies"
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
// (target: p99 under 20 ms on loopback).
func BenchmarkTriggerLatency(b *testing.B) {
	e := testenv.Get(b)
	dir := b.TempDir()
	store, err := Open(filepath.Join(dir, "state.db"), OpenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	reg := plugins.NewRegistry()
	if err := reg.Add(noop{}); err != nil {
		b.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := NewService(store, reg, quiet)
	exchange, queue := testenv.AMQPNames(b, e.AMQPURL, "bench")
	type trigger struct {
		at        time.Time
		execution string
	}
	queued := make(chan trigger, 1)
	mgr := NewManager(svc, ManagerConfig{AMQPURL: e.AMQPURL, Exchange: exchange, Queue: queue, Log: quiet,
		OnTrigger: func(_, _ string, t policies.Trigger) {
			if t.Error != "" {
				b.Error(t.Error)
			}
			queued <- trigger{time.Now(), t.Execution}
		}}, nil)
	bp := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(bp, []byte(latencyBlueprint), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := mgr.Deploy(ctx, DeployRequest{Paths: []string{bp}, ID: "web"}); err != nil {
		b.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { _ = mgr.Run(ctx); close(stopped) }()
	defer func() {
		cancel()
		<-stopped
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		_ = mgr.Close(cctx)
	}()

	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	publish := func(i int) time.Time {
		body := fmt.Sprintf(`{"node_id": "web_1", "node_name": "web", "deployment_id": "web", "name": "cpu", "path": "total", "metric": 95, "unit": "%%", "type": "GAUGE", "host": "h1", "service": "web.web.web_1.cpu.total", "time": %.3f}`,
			float64(time.Now().UnixNano())/1e9)
		start := time.Now()
		if err := ch.PublishWithContext(ctx, exchange, "web", false, false, amqp.Publishing{ContentType: "application/json", Body: []byte(body)}); err != nil {
			b.Fatal(err)
		}
		return start
	}
	// The intake is up once a first metric comes through.
	testenv.WaitFor(b, "the intake", 30*time.Second, func() bool {
		publish(0)
		select {
		case tr := <-queued:
			_, _ = svc.Engine.Wait(ctx, tr.execution)
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := publish(i)
		select {
		case tr := <-queued:
			lat = append(lat, tr.at.Sub(start))
			// The next metric finds no run waiting (which would hold its
			// trigger back as execution-queued).
			if _, err := svc.Engine.Wait(ctx, tr.execution); err != nil {
				b.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("metric %d: no execution queued", i)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
