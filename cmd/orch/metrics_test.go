package main

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"k8s.io/apimachinery/pkg/util/rand"

	"github.com/orchhq/orch/internal/testenv"
	"github.com/orchhq/orch/policies"
)

// orch metrics publish reaches the broker in the Diamond format that the
// intake decodes.
func TestMetricsPublish(t *testing.T) {
	e := testenv.Get(t)
	exchange := "test-publish-" + rand.String(6)
	conn, err := amqp.Dial(e.AMQPURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.ExchangeDelete(exchange, false, false)
	q, _ := ch.QueueDeclare("", false, true, true, false, nil)
	if err := ch.QueueBind(q.Name, "shop", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	msgs, _ := ch.Consume(q.Name, "", true, true, false, false, nil)

	state := t.TempDir() + "/state.db"
	r := orch(t, state, "metrics", "publish", "--url", e.AMQPURL, "--exchange", exchange, "-d", "shop",
		"--node", "bookings", "--host", "10.0.0.7", "--name", "cpu", "--path", "total", "--value", "85.5")
	if r.code != 0 || !strings.Contains(r.stdout, "published 1 metric") {
		t.Fatalf("exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	select {
	case d := <-msgs:
		m, err := policies.Decode(d.Body, d.RoutingKey)
		if err != nil {
			t.Fatal(err)
		}
		if m.DeploymentID != "shop" || m.NodeName != "bookings" || m.Host != "10.0.0.7" || m.Value != 85.5 ||
			m.Service != "shop.bookings.bookings.cpu.total" || m.Type != "GAUGE" || time.Since(time.Unix(int64(m.Time), 0)) > time.Minute {
			t.Errorf("received %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived")
	}
	r = orch(t, state, "metrics", "publish", "--url", e.AMQPURL, "--exchange", exchange, "-d", "shop",
		"--node", "bookings", "--name", "rps", "--value", "120", "--rate", "20", "--for", "1s")
	if r.code != 0 {
		t.Fatalf("rate: %s%s", r.stdout, r.stderr)
	}
	got := 0
	for done := false; !done; {
		select {
		case <-msgs:
			got++
		case <-time.After(time.Second):
			done = true
		}
	}
	if got < 15 || got > 25 {
		t.Errorf("20/s for 1s delivered %d messages", got)
	}
	if r := orch(t, state, "metrics", "publish", "--url", e.AMQPURL, "-d", "shop", "--name", "cpu"); r.code == 0 {
		t.Error("a metric without --node was published")
	}
}
