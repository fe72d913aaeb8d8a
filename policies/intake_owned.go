package policies

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Replicas of orch serve consume one durable queue per deployment, named
// DeploymentQueue(Queue, id) and bound to the exchange with the
// deployment's id (its routing key), instead of one queue per process:
// a deployment's metrics wait in its queue while nobody consumes it (the
// replica that owned it died, the one taking it over is loading it), and
// a replica that takes a deployment up starts consuming exactly where the
// former owner stopped. The queues are single-active-consumer queues, so
// while two replicas consume one (a hand-over), only one of them gets its
// messages, in order. A delivery is applied and acknowledged only while
// the replica owns its deployment (asked before and again at its ack);
// otherwise it goes back to its queue, for the owner. Every replica has one
// connection, with a channel per deployment it consumes (so a hand-over
// closes the channel, and what it had not acknowledged goes back).

// Owner says whether this process owns a deployment now.
type Owner interface{ Owns(deployment string) bool }

// DeploymentQueue is the durable queue of a deployment's metrics among
// replicas whose queue base is base.
func DeploymentQueue(base, deployment string) string { return base + "." + deployment }

// refusedRecheck is how often deployments whose deliveries were refused
// are looked at again.
const refusedRecheck = 500 * time.Millisecond

// queueArgs are the arguments every declaration of a deployment's queue
// gives (RabbitMQ refuses a second declaration with other ones).
func (in *Intake) queueArgs() amqp.Table {
	args := amqp.Table{"x-single-active-consumer": true}
	if in.DeadLetter != "" {
		args["x-dead-letter-exchange"] = in.DeadLetter
	}
	return args
}

// declareDeployment declares a deployment's queue and binds it: with the
// deployment's id (Diamond's routing key) and DEPLOYMENT.* (collectd's,
// DEPLOYMENT.NODE).
func (in *Intake) declareDeployment(ch *amqp.Channel, deployment string) error {
	q := DeploymentQueue(in.Queue, deployment)
	if _, err := ch.QueueDeclare(q, true, false, false, false, in.queueArgs()); err != nil {
		return fmt.Errorf("declare queue %s: %w", q, err)
	}
	// Diamond's routing key is the deployment; collectd's DEPLOYMENT.NODE.
	for _, key := range []string{deployment, deployment + ".*"} {
		if err := ch.QueueBind(q, key, in.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind %s to %s with %q: %w", q, in.Exchange, key, err)
		}
	}
	return nil
}

// Consume sets the deployments whose queues are consumed (with Owner set):
// those a replica owns and has loaded. Consumers of the others stop.
func (in *Intake) Consume(deployments []string) {
	in.ownedInit()
	in.subsMu.Lock()
	in.wanted = map[string]bool{}
	for _, d := range deployments {
		in.wanted[d] = true
	}
	clear(in.refused)
	in.subsMu.Unlock()
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// Declare declares a deployment's queue now (a deploy on any replica), so
// that its metrics wait for the owner from the first one.
func (in *Intake) Declare(ctx context.Context, deployment string) error {
	return in.control(ctx, func(ch *amqp.Channel) error { return in.declareDeployment(ch, deployment) })
}

// DeleteQueue deletes a deployment's queue (it was undeployed).
func (in *Intake) DeleteQueue(ctx context.Context, deployment string) error {
	return in.control(ctx, func(ch *amqp.Channel) error {
		_, err := ch.QueueDelete(DeploymentQueue(in.Queue, deployment), false, false, false)
		return err
	})
}

// Acked is how many messages of a deployment this intake applied and
// acknowledged.
func (in *Intake) Acked(deployment string) int64 {
	in.ownedInit()
	in.subsMu.Lock()
	defer in.subsMu.Unlock()
	if n := in.acked[deployment]; n != nil {
		return n.Load()
	}
	return 0
}

func (in *Intake) ownedInit() {
	in.initOnce.Do(func() {
		in.wanted, in.refused, in.acked = map[string]bool{}, map[string]bool{}, map[string]*atomic.Int64{}
		in.wake = make(chan struct{}, 1)
		in.ctl = make(chan ctlRequest)
	})
}

// ctlRequest is work on the connection's control channel, done by the
// session that owns it.
type ctlRequest struct {
	fn    func(*amqp.Channel) error
	reply chan error
}

// control runs fn on the session's control channel, waiting up to ctx for
// a connected session.
func (in *Intake) control(ctx context.Context, fn func(*amqp.Channel) error) error {
	in.ownedInit()
	req := ctlRequest{fn: fn, reply: make(chan error, 1)}
	select {
	case in.ctl <- req:
	case <-ctx.Done():
		return fmt.Errorf("metric intake not connected: %w", ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sub is the consumer of one deployment's queue, on a channel of its own.
type sub struct {
	dep    string
	ch     *amqp.Channel
	done   chan struct{} // closed when it stops: its forwarder drains
	closed bool
	// last is the newest applied delivery not yet acknowledged.
	last    uint64
	unacked int
	acked   *atomic.Int64
}

type subDelivery struct {
	s *sub
	d amqp.Delivery
}

// consumeOwned is a session's consuming with Owner set: the queues of the
// deployments Consume named, through one goroutine that applies.
func (in *Intake) consumeOwned(ctx context.Context, conn *amqp.Connection, ctl *amqp.Channel, closed <-chan *amqp.Error) error {
	in.ownedInit()
	merged := make(chan subDelivery, in.Prefetch)
	ended := make(chan *sub, 16)
	subs := map[string]*sub{}
	flush := func(s *sub) {
		if s.unacked == 0 {
			return
		}
		if in.Owner.Owns(s.dep) {
			if err := s.ch.Ack(s.last, true); err != nil {
				in.Log.Warn("ack", "deployment", s.dep, "err", err)
			} else {
				s.acked.Add(int64(s.unacked))
			}
		} else {
			// Ownership went while they waited for their ack: back to the
			// queue, for the owner.
			_ = s.ch.Nack(s.last, true, true)
		}
		s.unacked = 0
	}
	stop := func(s *sub) {
		flush(s)
		s.closed = true
		close(s.done)
		delete(subs, s.dep)
		// Closing the channel sends back what it had not acknowledged;
		// its forwarder drains meanwhile, so the close never waits on it.
		go s.ch.Close()
	}
	start := func(dep string) error {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("open channel: %w", err)
		}
		if err := in.declareDeployment(ch, dep); err != nil {
			return err
		}
		if err := ch.Qos(in.Prefetch, 0, false); err != nil {
			return fmt.Errorf("qos: %w", err)
		}
		ds, err := ch.Consume(DeploymentQueue(in.Queue, dep), "", false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("consume %s: %w", DeploymentQueue(in.Queue, dep), err)
		}
		in.subsMu.Lock()
		n := in.acked[dep]
		if n == nil {
			n = &atomic.Int64{}
			in.acked[dep] = n
		}
		in.subsMu.Unlock()
		s := &sub{dep: dep, ch: ch, done: make(chan struct{}), acked: n}
		subs[dep] = s
		go func() {
			for d := range ds {
				select {
				case <-s.done:
					continue
				default:
				}
				select {
				case merged <- subDelivery{s, d}:
				case <-s.done:
				}
			}
			select {
			case ended <- s:
			case <-s.done:
			}
		}()
		return nil
	}
	reconcile := func() error {
		in.subsMu.Lock()
		want := maps.Clone(in.wanted)
		for d := range in.refused {
			delete(want, d)
		}
		in.subsMu.Unlock()
		for _, dep := range slices.Sorted(maps.Keys(subs)) {
			if !want[dep] {
				stop(subs[dep])
			}
		}
		var errs []error
		for _, dep := range slices.Sorted(maps.Keys(want)) {
			if subs[dep] == nil {
				if err := start(dep); err != nil {
					errs = append(errs, fmt.Errorf("deployment %s: %w", dep, err))
				}
			}
		}
		return errors.Join(errs...)
	}
	defer func() {
		for _, s := range subs {
			if !in.crashed.Load() {
				flush(s)
			}
			close(s.done)
		}
		conn.Close()
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	rec := func() {
		if err := reconcile(); err != nil {
			in.Log.Warn("consume deployments' queues; retrying", "err", err)
			retry.Reset(in.MinBackoff * 10)
		}
	}
	rec()
	// A deployment whose delivery was refused (not owned at that instant)
	// is consumed again once it is owned and still wanted: ownership can
	// lapse for a moment (a lease renewal late under load) without any
	// change that would call Consume, and its queue must not starve.
	recheck := time.NewTicker(refusedRecheck)
	defer recheck.Stop()
	// idle runs while applied messages wait for their ack: armed by the
	// first of them, not pushed back by the ones after (of any deployment).
	idle := time.NewTimer(in.AckDelay)
	idle.Stop()
	defer idle.Stop()
	armed := false
	msgCtx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return fmt.Errorf("connection closed: %v", err)
		case <-in.wake:
			rec()
		case <-retry.C:
			rec()
		case <-recheck.C:
			in.subsMu.Lock()
			again := false
			for d := range in.refused {
				if in.wanted[d] && in.Owner.Owns(d) {
					delete(in.refused, d)
					again = true
				}
			}
			in.subsMu.Unlock()
			if again {
				rec()
			}
		case s := <-ended:
			// The broker cancelled it (its queue deleted) or its channel
			// closed: consumed again if still wanted.
			if subs[s.dep] == s {
				stop(s)
				retry.Reset(in.MinBackoff * 10)
			}
		case req := <-in.ctl:
			if ctl.IsClosed() {
				// A refused declaration closes its channel.
				if c, err := conn.Channel(); err == nil {
					ctl = c
				}
			}
			req.reply <- req.fn(ctl)
		case <-idle.C:
			armed = false
			for _, s := range subs {
				flush(s)
			}
		case sd := <-merged:
			s := sd.s
			if s.closed {
				continue // its channel is closing: the broker sends it again
			}
			if !in.Owner.Owns(s.dep) {
				// Not ours (any more): back to the queue; its consumer stops
				// until Consume says again.
				_ = sd.d.Nack(false, true)
				in.subsMu.Lock()
				in.refused[s.dep] = true
				in.subsMu.Unlock()
				stop(s)
				continue
			}
			// Another deployment's message, matched by the DEPLOYMENT.*
			// binding (a Diamond message of deployment "a.b" in the queue
			// of "a"), is only acknowledged: its own queue has it too.
			if RoutedTo(sd.d.Body, sd.d.RoutingKey) != s.dep || in.deliver(msgCtx, sd.d) {
				s.last = sd.d.DeliveryTag
				if s.unacked++; !armed {
					idle.Reset(in.AckDelay)
					armed = true
				}
				if s.unacked >= in.AckBatch {
					flush(s)
				}
			}
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}
