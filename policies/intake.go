package policies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultExchange is the topic exchange Cloudify's Diamond handler publishes
// to; the routing key is the deployment id.
const DefaultExchange = "cloudify-monitoring"

// Intake consumes metric messages from RabbitMQ. One goroutine owns the
// connection; when the broker or the channel closes it dials again with
// backoff and declares what it needs again. Messages are acked after
// Handle has applied them; a malformed one is rejected without requeue (to
// the dead-letter exchange, if configured) and logged once per kind.
type Intake struct {
	URL      string
	Exchange string // default DefaultExchange
	Queue    string // durable, one per orch instance
	// Bindings are routing keys (deployment ids); default "#" (all).
	Bindings []string
	Prefetch int // default 256
	// AckBatch is how many applied messages are acknowledged at once (one
	// multiple-ack); fewer are acknowledged at most AckDelay after the
	// first of them was applied, and on shutdown. Defaults 64 and 20ms. (Acks never delay a
	// decision: a message is applied before it is acknowledged.)
	AckBatch   int
	AckDelay   time.Duration
	DeadLetter string // exchange for rejected messages; "" drops them
	// Sink applies each message (a MalformedError rejects it, any other
	// error requeues it) and hears of the connection: the source "broker"
	// of every deployment fails while it is lost (the metrics it brings
	// are missing until it is back).
	// A message's context carries Run's values but not its cancel:
	// shutting down does not cut short the work a message started (the
	// runner bounds that work itself).
	Sink       MessageSink
	MinBackoff time.Duration // default 100ms
	MaxBackoff time.Duration // default 10s
	// Heartbeat is the AMQP heartbeat (default 10s): the broker drops a
	// connection silent for about twice as long, and sends its
	// unacknowledged messages to other consumers.
	Heartbeat time.Duration
	// Owner, when set, makes the intake consume the queues of the
	// deployments Consume names, one each (DeploymentQueue), instead of
	// Queue, and apply a delivery only while Owner owns its deployment:
	// replicas of orch serve (intake_owned.go).
	Owner Owner
	Log   *slog.Logger

	reconnects atomic.Int64
	received   atomic.Int64
	malformed  atomic.Int64
	loggedMu   sync.Mutex
	logged     map[string]bool
	connected  chan struct{}

	initOnce sync.Once
	subsMu   sync.Mutex
	wanted   map[string]bool // deployments to consume (Owner set)
	refused  map[string]bool // consumed but found not owned: stopped until Consume
	acked    map[string]*atomic.Int64
	wake     chan struct{}
	ctl      chan ctlRequest
	crashed  atomic.Bool // tests: end as a crash would, acknowledging nothing
}

// MessageSink is what the intake feeds: the policy runner.
type MessageSink interface {
	Ingest(ctx context.Context, body []byte, routingKey string) error
	SetSource(deployment, source, err string)
}

// BrokerSource names the broker among a deployment's metric sources.
const BrokerSource = "broker"

// Stats are the intake's counters. A delivery is counted as Received
// once the intake is done with it (applied, skipped, rejected or
// requeued), after any other counter it moves, so a reader that sees
// Received reach N also sees what the Nth delivery did.
type Stats struct {
	Received, Malformed, Reconnects int64
}

// Stats returns the counters.
func (in *Intake) Stats() Stats {
	return Stats{Received: in.received.Load(), Malformed: in.malformed.Load(), Reconnects: in.reconnects.Load()}
}

func (in *Intake) defaults() {
	if in.Exchange == "" {
		in.Exchange = DefaultExchange
	}
	if len(in.Bindings) == 0 {
		in.Bindings = []string{"#"}
	}
	if in.Prefetch == 0 {
		in.Prefetch = 256
	}
	if in.AckBatch <= 0 {
		in.AckBatch = min(64, in.Prefetch)
	}
	if in.AckDelay <= 0 {
		in.AckDelay = 20 * time.Millisecond
	}
	if in.MinBackoff == 0 {
		in.MinBackoff = 100 * time.Millisecond
	}
	if in.MaxBackoff == 0 {
		in.MaxBackoff = 10 * time.Second
	}
	if in.Heartbeat <= 0 {
		in.Heartbeat = 10 * time.Second
	}
	if in.Log == nil {
		in.Log = slog.Default()
	}
	in.logged = map[string]bool{}
}

// Run consumes until ctx is done. It returns nil then, having closed its
// channel and connection; it returns early only for a configuration error.
func (in *Intake) Run(ctx context.Context) error {
	if in.Sink == nil || in.Queue == "" || in.URL == "" {
		return errors.New("intake: URL, Queue and Sink are required")
	}
	in.defaults()
	backoff := in.MinBackoff
	for first := true; ; first = false {
		if !first {
			in.reconnects.Add(1)
		}
		err := in.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		in.Log.Warn("metric intake disconnected; reconnecting", "err", err, "in", backoff)
		if err == nil {
			err = errors.New("connection closed")
		}
		in.Sink.SetSource("", BrokerSource, err.Error())
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		if backoff *= 2; backoff > in.MaxBackoff {
			backoff = in.MaxBackoff
		}
		if err == nil {
			backoff = in.MinBackoff
		}
	}
}

// session is one connection's life: declare, consume, until it closes.
func (in *Intake) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(in.URL, amqp.Config{Heartbeat: in.Heartbeat, Properties: amqp.Table{"connection_name": "orch intake " + in.Queue}})
	if err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	defer conn.Close()
	// Closing the connection closes its channel: no Channel.Close, whose
	// close handshake can wait on a reader blocked by unread deliveries.
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.ExchangeDeclare(in.Exchange, "topic", true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", in.Exchange, err)
	}
	if in.Owner != nil {
		in.connectedNow()
		return in.consumeOwned(ctx, conn, ch, closed)
	}
	args := amqp.Table{}
	if in.DeadLetter != "" {
		args["x-dead-letter-exchange"] = in.DeadLetter
	}
	if _, err := ch.QueueDeclare(in.Queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %s: %w", in.Queue, err)
	}
	for _, key := range in.Bindings {
		if err := ch.QueueBind(in.Queue, key, in.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s with %q: %w", in.Queue, in.Exchange, key, err)
		}
	}
	if err := ch.Qos(in.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.Consume(in.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", in.Queue, err)
	}
	in.connectedNow()
	// Applied messages are acknowledged in batches: last is the newest
	// applied delivery not yet acknowledged.
	var last uint64
	unacked := 0
	flush := func() {
		if unacked == 0 {
			return
		}
		if err := ch.Ack(last, true); err != nil {
			in.Log.Warn("ack", "err", err)
		}
		unacked = 0
	}
	// On the way out, acknowledge what was applied, then drain what is in
	// flight while the connection closes: unacked messages are requeued by
	// the broker, never lost.
	defer func() {
		flush()
		go func() {
			for range deliveries {
			}
		}()
		conn.Close()
	}()
	// idle runs while applied messages wait for their ack: it is armed by
	// the first of a batch, not reset by every delivery.
	idle := time.NewTimer(in.AckDelay)
	idle.Stop()
	defer idle.Stop()
	msgCtx := context.WithoutCancel(ctx)
	for {
		var d amqp.Delivery
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return fmt.Errorf("connection closed: %v", err)
		case err := <-chClosed:
			return fmt.Errorf("channel closed: %v", err)
		case <-idle.C:
			flush() // a quiet stream is acknowledged within AckDelay
			continue
		case d, ok = <-deliveries:
		}
		if !ok {
			return errors.New("deliveries closed")
		}
		if in.deliver(msgCtx, d) {
			last = d.DeliveryTag
			if unacked++; unacked == 1 {
				idle.Reset(in.AckDelay)
			}
			if unacked >= in.AckBatch {
				flush()
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// connectedNow tells the log, the sink and a waiting test that the
// session is connected.
func (in *Intake) connectedNow() {
	in.Log.Info("metric intake connected", "exchange", in.Exchange, "queue", in.Queue, "per_deployment", in.Owner != nil)
	in.Sink.SetSource("", BrokerSource, "")
	if in.connected != nil {
		select {
		case in.connected <- struct{}{}:
		default:
		}
	}
}

// deliver applies one delivery and reports whether it is to be
// acknowledged; a malformed one is rejected, a failed one requeued.
func (in *Intake) deliver(ctx context.Context, d amqp.Delivery) bool {
	defer in.received.Add(1)
	if _, ok := d.Headers[PolledHeader]; ok {
		// serve's own copy of what it polled, for recordings: applied
		// when it was polled.
		return true
	}
	err := in.Sink.Ingest(ctx, d.Body, d.RoutingKey)
	if err == nil {
		return true
	}
	if kind, ok := IsMalformed(err); ok {
		in.malformed.Add(1)
		in.loggedMu.Lock()
		first := !in.logged[kind]
		in.logged[kind] = true
		in.loggedMu.Unlock()
		if first {
			sample := d.Body
			if len(sample) > 200 {
				sample = sample[:200]
			}
			in.Log.Warn("malformed metric message (logged once per kind; all are counted)", "kind", kind, "err", err, "routing_key", d.RoutingKey, "sample", string(sample))
		}
		_ = d.Reject(false)
		return false
	}
	in.Log.Warn("metric not applied; requeued", "err", err)
	_ = d.Nack(false, true)
	return false
}
