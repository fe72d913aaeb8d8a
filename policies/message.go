// Package policies is orch's event-driven heart: metric messages in
// (decoded, windowed), policy conditions evaluated over the windows, and
// decisions out. A decision names a workflow to queue; policies never call a
// plugin.
package policies

import (
	"errors"
	"fmt"
	"math"
	"time"

	json "github.com/goccy/go-json"

	"github.com/orchhq/orch/policies/producer"
)

// MaxMessageSize bounds a metric message; larger ones are malformed.
const MaxMessageSize = 64 << 10

// Metric is one metric message as Cloudify's Diamond handler writes it (the
// producer package owns the format).
type Metric = producer.Metric

// MalformedError says why a message was refused; Kind groups them for
// counting and logging once per kind.
type MalformedError struct {
	Kind   string // json, type, missing, value, too-large
	Detail string
}

func (e *MalformedError) Error() string { return "malformed metric (" + e.Kind + "): " + e.Detail }

// IsMalformed returns the kind of a malformed message error.
func IsMalformed(err error) (string, bool) {
	var me *MalformedError
	if errors.As(err, &me) {
		return me.Kind, true
	}
	return "", false
}

// wire is the message as it arrives: presence of the required numbers is
// checked through pointers.
type wire struct {
	NodeID       string   `json:"node_id"`
	NodeName     string   `json:"node_name"`
	DeploymentID string   `json:"deployment_id"`
	Name         string   `json:"name"`
	Path         string   `json:"path"`
	Metric       *float64 `json:"metric"`
	Unit         string   `json:"unit"`
	Type         string   `json:"type"`
	Host         string   `json:"host"`
	Service      string   `json:"service"`
	Time         *float64 `json:"time"`
	TTL          *float64 `json:"ttl"`
}

// Decode parses and checks one message. routingKey, when not empty, is the
// AMQP routing key: the deployment id, used when the body lacks one.
func Decode(data []byte, routingKey string) (Metric, error) { return decode(data, routingKey, nil) }

// decode is Decode, its strings interned by in (nil: none).
func decode(data []byte, routingKey string, in *interner) (Metric, error) {
	var m Metric
	_, err := decodeInto(data, routingKey, in, &m)
	return m, err
}

// decodeInto is decode into m, and the message's identity when in keeps
// one (nil: none). A message of a known identity takes
// its strings from there (it interns nothing), and has only its numbers
// checked: its strings passed when the identity was kept.
func decodeInto(data []byte, routingKey string, in *interner, m *Metric) (*ident, error) {
	if len(data) > MaxMessageSize {
		return nil, &MalformedError{Kind: "too-large", Detail: fmt.Sprintf("%d bytes, at most %d", len(data), MaxMessageSize)}
	}
	var f fields
	var raw rawStrings
	var sh *shape
	if in != nil {
		sh = &in.shape
		if id := sh.identified(data, &f, in.seed); id != nil {
			if err := f.checkNumbers(); err != nil {
				return nil, err
			}
			id.metric(m, &f)
			return id, nil
		}
	}
	if !scanFast(data, &f, &raw, sh) {
		var err error
		if f, err = decodeGoJSON(data); err != nil {
			return nil, err
		}
		*m, err = f.check(routingKey)
		return nil, err
	}
	id, h, identifiable := in.known(&raw)
	if id != nil {
		if err := f.checkNumbers(); err != nil {
			return nil, err
		}
		id.metric(m, &f)
		in.shape.identify(id, data, in.seed)
		return id, nil
	}
	in.intern(&f, &raw)
	var err error
	if *m, err = f.check(routingKey); err != nil {
		return nil, err
	}
	if identifiable {
		id = in.keep(h, m)
		in.shape.identify(id, data, in.seed)
	}
	return id, nil
}

// decodeGoJSON decodes any message go-json accepts.
func decodeGoJSON(data []byte) (fields, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fields{}, &MalformedError{Kind: "type", Detail: fmt.Sprintf("field %s: want %s, got %s", te.Field, te.Type, te.Value)}
		}
		return fields{}, &MalformedError{Kind: "json", Detail: err.Error()}
	}
	return w.fields(), nil
}

// check refuses an incomplete or out-of-range message and makes the
// metric.
func (w *fields) check(routingKey string) (Metric, error) {
	if w.DeploymentID == "" {
		w.DeploymentID = routingKey
	}
	switch {
	case !w.hasMetric || !w.hasTime:
		return Metric{}, w.checkNumbers()
	case w.DeploymentID == "":
		return Metric{}, &MalformedError{Kind: "missing", Detail: "no deployment_id (and no routing key)"}
	case w.Host == "":
		return Metric{}, &MalformedError{Kind: "missing", Detail: "no host"}
	case w.Name == "" && w.Path == "":
		return Metric{}, &MalformedError{Kind: "missing", Detail: "no name or path"}
	}
	if err := w.checkNumbers(); err != nil {
		return Metric{}, err
	}
	m := Metric{
		NodeID: w.NodeID, NodeName: w.NodeName, DeploymentID: w.DeploymentID, Name: w.Name, Path: w.Path,
		Value: w.metric, Unit: w.Unit, Type: w.Type, Host: w.Host, Service: w.Service, Time: w.time,
	}
	if w.hasTTL {
		m.TTL = w.ttl
	}
	if m.Service == "" {
		m.Service = fmt.Sprintf("%s.%s.%s.%s.%s", m.DeploymentID, m.NodeName, m.NodeID, m.Name, m.Path)
	}
	return m, nil
}

// checkNumbers refuses a message without its numbers or with one out of
// range (check's order: missing, then time, then value).
func (w *fields) checkNumbers() error {
	switch {
	case !w.hasMetric:
		return &MalformedError{Kind: "missing", Detail: "no metric value"}
	case !w.hasTime:
		return &MalformedError{Kind: "missing", Detail: "no time"}
	case w.time <= 0 || w.time > MaxTime:
		return &MalformedError{Kind: "value", Detail: "time must be epoch seconds"}
	}
	if err := valueProblem(w.metric); err != nil {
		return err
	}
	return nil
}

// Encode writes a metric as the Diamond handler does.
func Encode(m Metric) ([]byte, error) { return json.Marshal(m) }

// MaxMetricValue bounds a metric's magnitude: a window of 4,096 such
// samples still sums without overflow, and sums stay far from float64's
// limits (two samples of 1e308 made an infinite mean).
const MaxMetricValue = 1e18

// valueProblem refuses a metric value that is not finite or beyond
// MaxMetricValue, whatever source it came from.
func valueProblem(v float64) *MalformedError {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return &MalformedError{Kind: "value", Detail: "metric is not a finite number"}
	case math.Abs(v) > MaxMetricValue:
		return &MalformedError{Kind: "value", Detail: fmt.Sprintf("metric %g is beyond ±%g, the range orch's window sums keep exact", v, MaxMetricValue)}
	}
	return nil
}

// MaxTime is the latest time a message may carry (year 5138): past it,
// epoch seconds are milliseconds or worse.
const MaxTime = 1e11

// Seconds is t as an event time: Unix seconds, as messages carry it.
func Seconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
