package policies

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"github.com/orchhq/orch/blueprints"
)

// Record is one broker message as `orch metrics record` keeps it: one JSON
// object a line.
type Record struct {
	// Received is when the recorder got it (Unix seconds); the replay's
	// clock is the metric's own time, as serve's is.
	Received   float64 `json:"received"`
	RoutingKey string  `json:"routing_key"`
	// Body is the message when it is JSON; Raw holds any other body, so a
	// malformed message replays as malformed.
	Body json.RawMessage `json:"body,omitempty"`
	Raw  string          `json:"raw,omitempty"`
	// Polled names the blueprint source serve polled the value from (a
	// copy serve published, PolledHeader); "" for a published metric.
	Polled string `json:"polled,omitempty"`
}

// NewRecord keeps a delivered message body.
func NewRecord(received float64, routingKey string, body []byte) Record {
	r := Record{Received: received, RoutingKey: routingKey}
	if json.Valid(body) {
		r.Body = append(json.RawMessage(nil), body...)
	} else {
		r.Raw = string(body)
	}
	return r
}

// Payload is the message as it was published.
func (r Record) Payload() []byte {
	if r.Body != nil {
		return r.Body
	}
	return []byte(r.Raw)
}

// ReadRecords calls fn with each record of a recording, with its line
// number; a line that is not a record is an error naming the line.
func ReadRecords(rd io.Reader, fn func(line int, r Record) error) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 2*MaxMessageSize)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("line %d: not a recorded message: %w", line, err)
		}
		if err := fn(line, r); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

// Replayer runs a recorded stream through a blueprint's policies as orch
// serve would, at full speed: the clock is the metrics' event time, missing
// data is checked at every whole second the stream passes (serve checks
// every second), and workflows are recorded, never queued.
type Replayer struct {
	Runner     *Runner
	Deployment string
	// Metrics applied, Malformed messages refused, Skipped messages of
	// other deployments.
	Metrics, Malformed, Skipped int
	clock                       float64
}

// NewReplayer evaluates the policies of plan as deployment's.
func NewReplayer(ctx context.Context, deployment string, plan *blueprints.Plan) (*Replayer, error) {
	p := NewPipeline(3600)
	p.Now = nil // the recording's own time is the only clock
	r := NewRunner(p, nil, discardState{})
	r.DryRun = true
	r.LogSize, r.LogAge = math.MaxInt, math.Inf(1)
	if err := r.AddDeployment(ctx, deployment, plan); err != nil {
		return nil, err
	}
	for _, rp := range r.policies {
		rp.instance.HistorySize = math.MaxInt // the whole stream, for a plot
	}
	return &Replayer{Runner: r, Deployment: deployment}, nil
}

// Feed replays one recorded message.
func (p *Replayer) Feed(ctx context.Context, rec Record) error {
	// Diamond's routing key is the deployment; collectd's DEPLOYMENT.NODE.
	if rec.RoutingKey != p.Deployment && !strings.HasPrefix(rec.RoutingKey, p.Deployment+".") {
		p.Skipped++
		return nil
	}
	ms, skipped, err := DecodeAll(rec.Payload(), rec.RoutingKey, nil)
	p.Malformed += skipped
	if err != nil {
		if _, ok := IsMalformed(err); ok {
			p.Malformed++
			return nil
		}
		return err
	}
	for i := range ms {
		if ms[i].DeploymentID != p.Deployment {
			p.Skipped++
			continue
		}
		if err := p.advance(ctx, ms[i].Time); err != nil {
			return err
		}
		if err := p.Runner.Apply(ctx, &ms[i]); err != nil {
			return err
		}
		p.Metrics++
	}
	return nil
}

// advance moves the clock to t, checking for missing data at each whole
// second on the way.
func (p *Replayer) advance(ctx context.Context, t float64) error {
	if p.clock == 0 {
		p.clock = math.Floor(t)
	}
	for p.clock+1 <= t {
		p.clock++
		if err := p.Runner.TickAt(ctx, p.clock); err != nil {
			return err
		}
	}
	return nil
}

// Decisions returns every decision of every policy, in time order.
func (p *Replayer) Decisions() []Decision {
	var out []Decision
	for _, ps := range p.Runner.Status(p.Deployment, p.clock) {
		out = append(out, ps.Decisions...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time < out[j].Time })
	return out
}

// discardState keeps nothing: a replay starts from nothing and its
// runner keeps cooldowns and decisions in memory anyway.
type discardState struct{}

func (discardState) PolicyState(_ context.Context, key string, _ any) error {
	return fmt.Errorf("%s: %w", key, errNoState)
}

func (discardState) PutPolicyState(context.Context, string, any) error { return nil }

var errNoState = errors.New("no state")
