package policies

import (
	"context"
	"testing"
)

type fixedSource map[string]float64

func (f fixedSource) ServiceMetrics(context.Context, string, string, int) (map[string]float64, error) {
	return f, nil
}

type sinkRecorder struct{ got []*Metric }

func (s *sinkRecorder) Apply(_ context.Context, m *Metric) error {
	s.got = append(s.got, m)
	return nil
}
func (s *sinkRecorder) SetSource(string, string, string) {}

// A polled metric's node_id is the node's instance when it has one, as in
// the service it names; the node's name when it has several.
func TestPolledMetricsNameTheInstance(t *testing.T) {
	for _, c := range []struct{ instance, wantID string }{{"bookings_3fa2c1", "bookings_3fa2c1"}, {"", "bookings"}} {
		sink := &sinkRecorder{}
		p := &Poller{Source: fixedSource{"rps": 12}, Sink: sink, Services: func() []PolledService {
			return []PolledService{{Deployment: "shop", Node: "bookings", Instance: c.instance, Namespace: "ns", Name: "bookings"}}
		}}
		p.Poll(context.Background())
		if len(sink.got) != 1 {
			t.Fatalf("applied %d metrics", len(sink.got))
		}
		m := sink.got[0]
		if m.NodeID != c.wantID || m.NodeName != "bookings" || m.Service != "shop.bookings."+c.wantID+".rps." {
			t.Errorf("instance %q: node_id %q, service %q", c.instance, m.NodeID, m.Service)
		}
	}
}
