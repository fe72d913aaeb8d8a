// Package prometheus asks a Prometheus server's HTTP API for the value of
// an instant query, for a blueprint's `source` of kind prometheus.
package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Client queries one server. Token returns the bearer token to send ("":
// none); it is called at each query, so a token file can be rotated.
type Client struct {
	URL   string
	Token func() (string, error)
	HTTP  *http.Client
}

// Sample is one series of an instant query's answer (a scalar is one
// sample without labels).
type Sample struct {
	Labels map[string]string
	Value  float64
	Time   float64 // Unix seconds
}

// TokenFile returns a Token that reads path at each query.
func TokenFile(path string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("bearer token file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

// maxAnswer bounds the answer read: a query that selects far too many
// series is an error, not a memory spike.
const maxAnswer = 8 << 20

// Query evaluates q at time at. A failed request, an error status or an
// answer that is neither a vector nor a scalar is an error.
func (c *Client) Query(ctx context.Context, q string, at time.Time) ([]Sample, error) {
	u, err := url.Parse(strings.TrimSuffix(c.URL, "/") + "/api/v1/query")
	if err != nil {
		return nil, fmt.Errorf("prometheus url: %w", err)
	}
	form := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.Token != nil {
		tok, err := c.Token()
		if err != nil {
			return nil, err
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		if inner := errors.Unwrap(err); inner != nil {
			err = inner // the url.Error's text repeats the url
		}
		return nil, fmt.Errorf("prometheus %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: reading the answer: %w", u.Host, err)
	}
	if len(body) > maxAnswer {
		return nil, fmt.Errorf("prometheus %s: the answer is over %d MiB; select fewer series", u.Host, maxAnswer>>20)
	}
	var ans struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("prometheus %s: HTTP %d, not an API answer", u.Host, resp.StatusCode)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("prometheus %s: %s: %s", u.Host, ans.ErrorType, ans.Error)
	}
	switch ans.Data.ResultType {
	case "scalar":
		var pair [2]json.RawMessage
		if err := json.Unmarshal(ans.Data.Result, &pair); err != nil {
			return nil, fmt.Errorf("prometheus %s: a malformed scalar", u.Host)
		}
		s, err := samplePair(pair)
		if err != nil {
			return nil, fmt.Errorf("prometheus %s: %w", u.Host, err)
		}
		return []Sample{s}, nil
	case "vector":
		var series []struct {
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &series); err != nil {
			return nil, fmt.Errorf("prometheus %s: a malformed vector", u.Host)
		}
		out := make([]Sample, 0, len(series))
		for _, x := range series {
			s, err := samplePair(x.Value)
			if err != nil {
				return nil, fmt.Errorf("prometheus %s: %w", u.Host, err)
			}
			s.Labels = x.Metric
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("prometheus %s: the query gives a %s; a source needs a scalar or an instant vector", u.Host, ans.Data.ResultType)
}

// samplePair decodes [time, "value"].
func samplePair(p [2]json.RawMessage) (Sample, error) {
	var t float64
	var v string
	if json.Unmarshal(p[0], &t) != nil || json.Unmarshal(p[1], &v) != nil {
		return Sample{}, errors.New("a malformed sample")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return Sample{}, fmt.Errorf("sample value %q is not a number", v)
	}
	return Sample{Value: f, Time: t}, nil
}

// Host names a sample's host: its label hostLabel, or for a sample without
// it (a scalar, an aggregate) fallback, followed by its other labels when
// it has some, so distinct series stay distinct hosts.
func (s Sample) Host(hostLabel, fallback string) string {
	if h := s.Labels[hostLabel]; h != "" {
		return h
	}
	if len(s.Labels) == 0 {
		return fallback
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fallback + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, s.Labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

// Finite reports whether the value is a number a window can hold (a
// query can answer NaN or ±Inf: a division by zero, no rate yet).
func (s Sample) Finite() bool { return !math.IsNaN(s.Value) && !math.IsInf(s.Value, 0) }
