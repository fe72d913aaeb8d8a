package policies

import (
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/policies/producer"
)

// publish sends bodies to the exchange with publisher confirms.
func publish(t *testing.T, url, exchange, key string, bodies ...string) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, len(bodies)))
	for _, b := range bodies {
		if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, amqp.Publishing{ContentType: "application/json", Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	for range bodies {
		if c := <-confirms; !c.Ack {
			t.Fatal("publish not confirmed")
		}
	}
}

type collector struct {
	mu      sync.Mutex
	metrics []Metric
}

func (c *collector) SetSource(string, string, string) {}

func (c *collector) Ingest(_ context.Context, body []byte, key string) error {
	m, err := Decode(body, key)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.metrics = append(c.metrics, m)
	c.mu.Unlock()
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.metrics)
}

func startIntake(t *testing.T, url string, c *collector) (*Intake, func()) {
	t.Helper()
	id := rand.String(6)
	in := &Intake{URL: url, Exchange: "test-monitoring-" + id, Queue: "orch-test-" + id, Sink: c,
		MinBackoff: 20 * time.Millisecond, connected: make(chan struct{}, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx) }()
	select {
	case <-in.connected:
	case <-time.After(30 * time.Second):
		t.Fatal("intake never connected")
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		// Clean the broker up.
		if conn, err := amqp.Dial(url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(in.Queue, false, false, false)
				_ = ch.ExchangeDelete(in.Exchange, false, false)
			}
			conn.Close()
		}
	}
	return in, stop
}

func diamond(dep string, i int) string {
	return fmt.Sprintf(`{"node_id":"web_1","node_name":"web","deployment_id":%q,"name":"cpu","path":"total","metric":%d,"unit":"percent","type":"GAUGE","host":"h%d","service":"%s.web.web_1.cpu.total","time":%d}`, dep, i, i%3, dep, 1700000000+i)
}

func TestIntakeAppliesGoodAndRejectsMalformedMessages(t *testing.T) {
	e := testenv.Get(t)
	before := runtime.NumGoroutine()
	c := &collector{}
	in, stop := startIntake(t, e.AMQPURL, c)
	var bodies []string
	for i := 0; i < 50; i++ {
		bodies = append(bodies, diamond("shop", i))
	}
	bodies = append(bodies, `{not json`, `{"metric":"high","time":1,"host":"h","name":"x"}`, strings.Repeat("x", MaxMessageSize+1))
	publish(t, e.AMQPURL, in.Exchange, "shop", bodies...)
	testenv.WaitFor(t, "all messages", 30*time.Second, func() bool { return in.Stats().Received == int64(len(bodies)) })
	if c.count() != 50 || in.Stats().Malformed != 3 {
		t.Errorf("applied %d, malformed %d", c.count(), in.Stats().Malformed)
	}
	// Nothing was requeued: the queue is empty.
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := conn.Channel()
	q, err := ch.QueueDeclarePassive(in.Queue, true, false, false, false, nil)
	conn.Close()
	if err != nil || q.Messages != 0 {
		t.Errorf("queue after consuming: %+v, %v", q, err)
	}
	stop()
	time.Sleep(200 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Errorf("goroutines: %d before, %d after stopping the intake", before, after)
	}
}

func TestIntakeReconnects(t *testing.T) {
	e := testenv.Get(t)
	c := &collector{}
	in, stop := startIntake(t, e.AMQPURL, c)
	defer stop()
	publish(t, e.AMQPURL, in.Exchange, "shop", diamond("shop", 1))
	testenv.WaitFor(t, "the first message", 30*time.Second, func() bool { return c.count() == 1 })

	// The queue vanishes under the consumer (the broker cancels it): the
	// intake reconnects and declares the queue and binding again.
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := conn.Channel()
	if _, err := ch.QueueDelete(in.Queue, false, false, false); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	select {
	case <-in.connected:
	case <-time.After(30 * time.Second):
		t.Fatal("no reconnect after the queue was deleted")
	}
	publish(t, e.AMQPURL, in.Exchange, "shop", diamond("shop", 2))
	testenv.WaitFor(t, "a message after the reconnect", 30*time.Second, func() bool { return c.count() == 2 })

	// The broker closes the intake's connection.
	out, err := exec.Command("rabbitmqctl", "list_connections", "pid", "client_properties").CombinedOutput()
	if err != nil {
		t.Skipf("rabbitmqctl not usable here: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "orch intake "+in.Queue) {
			pid := strings.Fields(line)[0]
			if out, err := exec.Command("rabbitmqctl", "close_connection", pid, "test: broker closes the intake").CombinedOutput(); err != nil {
				t.Fatalf("close_connection: %v %s", err, out)
			}
		}
	}
	select {
	case <-in.connected:
	case <-time.After(30 * time.Second):
		t.Fatal("no reconnect after the broker closed the connection")
	}
	publish(t, e.AMQPURL, in.Exchange, "shop", diamond("shop", 3))
	testenv.WaitFor(t, "a message after the second reconnect", 30*time.Second, func() bool { return c.count() == 3 })
	if r := in.Stats().Reconnects; r < 2 {
		t.Errorf("reconnects = %d, want at least 2", r)
	}
}

// A message published by Debian's amqp-publish (a client we did not write)
// in the Diamond format is decoded and applied.
func TestIntakeTakesMessagesFromAmqpPublish(t *testing.T) {
	e := testenv.Get(t)
	if _, err := exec.LookPath("amqp-publish"); err != nil {
		t.Fatal("amqp-publish missing: make env-up installs amqp-tools")
	}
	c := &collector{}
	in, stop := startIntake(t, e.AMQPURL, c)
	defer stop()
	body := diamond("shop", 7)
	// librabbitmq reads a trailing "/" as the empty vhost; without a path it
	// is the default vhost "/".
	url := strings.TrimSuffix(e.AMQPURL, "/")
	if out, err := exec.Command("amqp-publish", "--url", url, "-e", in.Exchange, "-r", "shop", "-C", "application/json", "-b", body).CombinedOutput(); err != nil {
		t.Fatalf("amqp-publish: %v %s", err, out)
	}
	testenv.WaitFor(t, "the amqp-publish message", 30*time.Second, func() bool { return c.count() == 1 })
	c.mu.Lock()
	m := c.metrics[0]
	c.mu.Unlock()
	if m.DeploymentID != "shop" || m.Value != 7 || m.Host != "h1" || m.Key() != "cpu.total" {
		t.Errorf("decoded %+v", m)
	}
}

// serve's copies of what it polled (PolledHeader) are for recordings: the
// intake acknowledges them and applies nothing (they were applied when
// polled), and applies the metrics published beside them.
func TestIntakeSkipsServesCopiesOfPolledValues(t *testing.T) {
	e := testenv.Get(t)
	c := &collector{}
	in, stop := startIntake(t, e.AMQPURL, c)
	defer stop()
	pub, err := producer.Dial(e.AMQPURL, in.Exchange)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	m := producer.Metric{DeploymentID: "shop", NodeName: "web", NodeID: "web", Host: "prom", Name: "load", Value: 50, Time: 1700000000}
	for i := 0; i < 3; i++ {
		if err := pub.PublishWith(context.Background(), m, amqp.Table{PolledHeader: "load"}); err != nil {
			t.Fatal(err)
		}
	}
	m.Value = 60
	if err := pub.Publish(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "all four messages", 30*time.Second, func() bool { return in.Stats().Received == 4 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.metrics) != 1 || c.metrics[0].Value != 60 {
		t.Errorf("applied %+v, want only the published 60", c.metrics)
	}
	if in.Stats().Malformed != 0 {
		t.Errorf("%d malformed", in.Stats().Malformed)
	}
}
