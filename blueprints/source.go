package blueprints

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Source is a `source "name" {}` block: metrics orch serve polls (a
// Prometheus query, Calisti's service metrics) into the same windows as
// the broker's.
type Source struct {
	Name      string
	Kind      string
	KindRange hcl.Range
	// The attributes that may read inputs, evaluated when the blueprint is
	// resolved (nil when absent).
	URL, Query, BearerToken, BearerTokenFile hcl.Expression
	Metric, HostLabel                        string
	MetricRange                              hcl.Range
	Node                                     string
	NodeRange                                hcl.Range
	Interval, Timeout                        time.Duration
	TimeoutRange                             hcl.Range
	DeclRange                                hcl.Range
}

// SourceKinds are the kinds of source a blueprint may declare.
var SourceKinds = []string{"prometheus", "calisti"}

// Source defaults.
const (
	DefaultSourceInterval = 15 * time.Second
	DefaultHostLabel      = "instance"
)

var sourceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "kind", Required: true}, {Name: "url", Required: true}, {Name: "query"},
	{Name: "metric"}, {Name: "node", Required: true},
	{Name: "host_label"}, {Name: "interval"}, {Name: "timeout"},
	{Name: "bearer_token"}, {Name: "bearer_token_file"},
}}

func decodeSourceBlock(block *hcl.Block) (*Source, hcl.Diagnostics) {
	diags := checkName(block, "source")
	s := &Source{Name: block.Labels[0], DeclRange: block.DefRange, Interval: DefaultSourceInterval, HostLabel: DefaultHostLabel}
	content, d := block.Body.Content(sourceSchema)
	diags = append(diags, d...)
	if attr := content.Attributes["kind"]; attr != nil {
		s.KindRange = attr.Expr.Range()
		d := decodeStaticString(attr, &s.Kind)
		diags = append(diags, d...)
		if !d.HasErrors() && !slices.Contains(SourceKinds, s.Kind) {
			diags = append(diags, attrError(attr, "Unknown source kind",
				fmt.Sprintf("A source's kind is one of %s, not %q.%s", strings.Join(SourceKinds, ", "), s.Kind, suggestion(s.Kind, SourceKinds))))
		}
	}
	for name, target := range map[string]*hcl.Expression{"url": &s.URL, "query": &s.Query, "bearer_token": &s.BearerToken, "bearer_token_file": &s.BearerTokenFile} {
		if attr := content.Attributes[name]; attr != nil {
			*target = attr.Expr
		}
	}
	if attr := content.Attributes["metric"]; attr != nil {
		s.MetricRange = attr.Expr.Range()
		d := decodeStaticString(attr, &s.Metric)
		diags = append(diags, d...)
		if !d.HasErrors() && (s.Metric == "" || strings.ContainsAny(s.Metric, " \t\n.")) {
			diags = append(diags, attrError(attr, "Invalid metric", "metric is the name policies read the values by (window(\"NAME\", ...)): not empty, without spaces or dots."))
		}
	}
	if attr := content.Attributes["node"]; attr != nil {
		name, rng, d := decodeRef(attr.Expr, "node")
		diags = append(diags, d...)
		s.Node, s.NodeRange = name, rng
	}
	if attr := content.Attributes["host_label"]; attr != nil {
		diags = append(diags, decodeStaticString(attr, &s.HostLabel)...)
	}
	if attr := content.Attributes["interval"]; attr != nil {
		d := decodeDuration(attr, &s.Interval)
		diags = append(diags, d...)
		if !d.HasErrors() && s.Interval < time.Second {
			diags = append(diags, attrError(attr, "Invalid interval", "A source is polled at most once a second."))
		}
	}
	if attr := content.Attributes["timeout"]; attr != nil {
		s.TimeoutRange = attr.Expr.Range()
		diags = append(diags, decodeDuration(attr, &s.Timeout)...)
	}
	if s.Timeout == 0 {
		s.Timeout = min(s.Interval, 10*time.Second)
	} else if s.Timeout > s.Interval {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid timeout",
			Detail: fmt.Sprintf("timeout %s is longer than the interval %s: a poll would still run when the next is due.", s.Timeout, s.Interval), Subject: s.TimeoutRange.Ptr()})
	}
	// What each kind takes.
	switch s.Kind {
	case "prometheus":
		for _, name := range []string{"query", "metric"} {
			if content.Attributes[name] == nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing " + name,
					Detail: fmt.Sprintf("A prometheus source needs %s: the PromQL query and the metric name its values feed.", name), Subject: block.DefRange.Ptr()})
			}
		}
	case "calisti":
		for _, name := range []string{"query", "metric", "host_label"} {
			if attr := content.Attributes[name]; attr != nil {
				diags = append(diags, attrError(attr, "Not for calisti",
					fmt.Sprintf("A calisti source polls the node's mesh service for its rps and latency_p50 (metric names fixed by the service query); it takes no %s.", name)))
			}
		}
	}
	if s.BearerToken != nil && s.BearerTokenFile != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Two bearer tokens",
			Detail: "Give bearer_token or bearer_token_file, not both.", Subject: s.BearerTokenFile.Range().Ptr()})
	}
	return s, diags
}

// PlanSource is a source with its values resolved.
type PlanSource struct {
	Name, Kind string
	URL        string
	Query      string
	// Metric and Node are what the values feed: the metric name policies
	// read, of the node's deployment; HostLabel the label naming the host
	// of each series (a scalar, or a series without it, is host Name).
	Metric, Node, HostLabel string
	Interval, Timeout       time.Duration
	// BearerToken is marked sensitive (it comes from a sensitive input);
	// cty.NilVal when there is none. BearerTokenFile is read at each poll.
	BearerToken     cty.Value
	BearerTokenFile string
	DeclRange       hcl.Range
}

// Token returns the bearer token's text ("" for none).
func (s *PlanSource) Token() string {
	if s.BearerToken == cty.NilVal {
		return ""
	}
	v, _ := s.BearerToken.Unmark()
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return ""
	}
	return v.AsString()
}

func (c *checker) planSource(s *Source) *PlanSource {
	ps := &PlanSource{Name: s.Name, Kind: s.Kind, Metric: s.Metric, Node: s.Node, HostLabel: s.HostLabel,
		Interval: s.Interval, Timeout: s.Timeout, DeclRange: s.DeclRange}
	if s.Node != "" {
		if n, ok := c.nodes[s.Node]; !ok {
			c.errorf(s.NodeRange, "Reference to undeclared node", "Source %q feeds node %q, which is not declared.%s", s.Name, s.Node, suggestion(s.Node, slices.Sorted(maps.Keys(c.nodes))))
		} else if s.Kind == "calisti" && c.cat != nil {
			c.checkMeshService(s, n)
		}
	}
	str := func(expr hcl.Expression, what string) (string, bool) {
		if expr == nil {
			return "", false
		}
		v, ok := c.eval(expr, scope{})
		if !ok {
			return "", false
		}
		v, err := convert.Convert(v, cty.String)
		if err != nil || v.IsNull() {
			c.errorf(expr.Range(), "Invalid "+what, "%s must be a string.", what)
			return "", false
		}
		if !v.IsKnown() {
			return "", false // an input not given yet (orch validate)
		}
		u, _ := v.Unmark()
		return u.AsString(), true
	}
	if u, ok := str(s.URL, "url"); ok {
		ps.URL = u
		c.checkSourceURL(s, u)
	}
	if q, ok := str(s.Query, "query"); ok {
		ps.Query = q
		c.checkPromQL(s.Query, q)
	}
	if s.Kind == "calisti" {
		ps.HostLabel = ""
	}
	if f, ok := str(s.BearerTokenFile, "bearer_token_file"); ok {
		ps.BearerTokenFile = f
	}
	if s.BearerToken != nil {
		if v, ok := c.eval(s.BearerToken, scope{}); ok {
			switch {
			case !v.HasMark(SensitiveMark):
				c.errorf(s.BearerToken.Range(), "Bearer token not sensitive",
					"bearer_token must come from an input marked sensitive (input.NAME with sensitive = true, given in ORCH_INPUT_NAME): a token written here or in a plain input is stored with the deployment. Or use bearer_token_file.")
			default:
				if t, err := convert.Convert(v, cty.String); err != nil {
					c.errorf(s.BearerToken.Range(), "Invalid bearer_token", "bearer_token must be a string.")
				} else {
					ps.BearerToken = t
				}
			}
		}
	}
	return ps
}

// checkMeshService checks that a calisti source's node is a mesh service
// (of a type a plugin registered as one, or derived from it).
func (c *checker) checkMeshService(s *Source, n *Node) {
	e := c.eff[n.Type]
	if e == nil && n.Type != "" {
		return // an unknown type is reported where it is written
	}
	if e != nil {
		for _, t := range e.chain {
			if slices.Contains(c.cat.MeshServiceTypes, t) {
				return
			}
		}
	}
	c.errorf(s.NodeRange, "Not a mesh service", "A calisti source polls the mesh service of its node: node %q is not of a type that is one (%s).", n.Name, strings.Join(c.cat.MeshServiceTypes, ", "))
}

// checkSourceURL checks a source's server: http or https with a host, and
// no token sent in clear beyond this host.
func (c *checker) checkSourceURL(s *Source, raw string) {
	rng := s.URL.Range()
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.errorf(rng, "Invalid url", "url is the server's address, such as \"http://prometheus.monitoring:9090\" or \"https://calisti.example/api/graphql\", not %q.", raw)
		return
	}
	if u.User != nil {
		c.errorf(rng, "Credentials in url", "Do not put credentials in the url (it is shown and stored); use bearer_token from a sensitive input, or bearer_token_file.")
	}
	if u.Scheme == "http" && (s.BearerToken != nil || s.BearerTokenFile != nil) && !loopback(u.Hostname()) {
		c.errorf(rng, "Token in clear", "A bearer token is sent only over https beyond this host (%s is plain http).", u.Host)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkPromQL parses a query as Prometheus does, and refuses what an
// instant query cannot turn into values (a range vector, a string). A
// syntax error points into the query when it is written as one line.
func (c *checker) checkPromQL(expr hcl.Expression, q string) {
	e, err := parser.ParseExpr(q)
	if err != nil {
		rng := expr.Range()
		detail := err.Error()
		var perrs parser.ParseErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			pe := perrs[0]
			detail = pe.Err.Error()
			if pe.Query == "" || pe.Query == q {
				rng = queryRange(expr, q, int(pe.PositionRange.Start), int(pe.PositionRange.End))
			}
		}
		c.errorf(rng, "Invalid PromQL query", "Prometheus cannot parse the query: %s.", detail)
		return
	}
	switch e.Type() {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
	case parser.ValueTypeMatrix:
		c.errorf(expr.Range(), "Query gives a range vector", "An instant query of a range vector has no single value per series; reduce it, as in rate(%s) or avg_over_time(%s).", q, q)
	default:
		c.errorf(expr.Range(), "Query gives no number", "The query gives a %s; a source needs a number (a scalar) or one per series (an instant vector).", e.Type())
	}
}

// queryRange is the range of bytes start to end of a query written as a
// one-line string literal without escapes, or the expression's.
func queryRange(expr hcl.Expression, q string, start, end int) hcl.Range {
	rng := expr.Range()
	tmpl, ok := expr.(*hclsyntax.TemplateExpr)
	if !ok || !tmpl.IsStringLiteral() || rng.Start.Line != rng.End.Line || rng.End.Byte-rng.Start.Byte != len(q)+2 {
		return rng
	}
	start = min(max(start, 0), len(q))
	end = min(max(end, start+1), len(q)+1)
	at := func(off int) hcl.Pos {
		return hcl.Pos{Line: rng.Start.Line, Column: rng.Start.Column + 1 + off, Byte: rng.Start.Byte + 1 + off}
	}
	return hcl.Range{Filename: rng.Filename, Start: at(start), End: at(end)}
}
