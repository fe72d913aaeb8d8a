package mesh

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
)

// Schema is schema.graphql, for servers that validate requests against it.
//
//go:embed schema.graphql
var Schema string

// Auth is how orch authenticates to Calisti: a bearer token or a session
// cookie. Its String never shows the secret.
type Auth struct {
	Token  string
	Cookie string
	// Hosts, when set, are the only endpoint hosts (host or host:port) the
	// credentials may go to (ORCH_CALISTI_HOSTS).
	Hosts []string
}

// HostsEnv names the allow-list of endpoint hosts for the credentials.
const HostsEnv = "ORCH_CALISTI_HOSTS"

// Secret reports whether there are credentials to protect.
func (a Auth) Secret() bool { return a.Token != "" || a.Cookie != "" }

func (a Auth) String() string {
	switch {
	case a.Token != "":
		return "token (redacted)"
	case a.Cookie != "":
		return "cookie (redacted)"
	}
	return "none"
}

// AuthFromEnv reads ORCH_CALISTI_TOKEN or ORCH_CALISTI_COOKIE, or the file
// named by ORCH_CALISTI_TOKEN_FILE / ORCH_CALISTI_COOKIE_FILE.
func AuthFromEnv() (Auth, error) {
	var a Auth
	read := func(value, file string) (string, error) {
		if v := os.Getenv(value); v != "" {
			return v, nil
		}
		if f := os.Getenv(file); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("%s: %w", file, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		return "", nil
	}
	var err error
	if a.Token, err = read("ORCH_CALISTI_TOKEN", "ORCH_CALISTI_TOKEN_FILE"); err != nil {
		return a, err
	}
	if a.Cookie, err = read("ORCH_CALISTI_COOKIE", "ORCH_CALISTI_COOKIE_FILE"); err != nil {
		return a, err
	}
	for _, h := range strings.Split(os.Getenv(HostsEnv), ",") {
		if h = strings.TrimSpace(h); h != "" {
			a.Hosts = append(a.Hosts, h)
		}
	}
	return a, nil
}

// authTransport adds the credentials to requests for one host only.
type authTransport struct {
	auth Auth
	host string // the endpoint's host:port
	next http.RoundTripper
}

func (t authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != t.host {
		return t.next.RoundTrip(r) // never the credentials to another host
	}
	r = r.Clone(r.Context())
	if t.auth.Token != "" {
		r.Header.Set("Authorization", "Bearer "+t.auth.Token)
	}
	if t.auth.Cookie != "" {
		r.Header.Set("Cookie", t.auth.Cookie)
	}
	return t.next.RoundTrip(r)
}

// Client talks to Calisti's GraphQL endpoint.
type Client struct {
	url string
	gql graphql.Client
}

// New returns a client of the GraphQL endpoint at endpoint. With
// credentials, the endpoint must be https (or http on a loopback address,
// for a local proxy), and the credentials go to its host only: a redirect
// to another host is refused.
func New(endpoint string, auth Auth) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("mesh endpoint %q: want an http(s) URL such as https://calisti.example/api/graphql", endpoint)
	}
	if auth.Secret() && u.Scheme != "https" && !loopback(u.Hostname()) {
		return nil, fmt.Errorf("mesh endpoint %s: the Calisti credentials go over https only (or http to a loopback address)", u.Redacted())
	}
	if auth.Secret() && len(auth.Hosts) > 0 && !slices.Contains(auth.Hosts, u.Host) && !slices.Contains(auth.Hosts, u.Hostname()) {
		return nil, fmt.Errorf("mesh endpoint %s: its host is not among %s (%s), the hosts the Calisti credentials may go to", u.Redacted(), HostsEnv, strings.Join(auth.Hosts, ", "))
	}
	hc := &http.Client{
		Timeout:   30 * time.Second,
		Transport: authTransport{auth: auth, host: u.Host, next: http.DefaultTransport},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != u.Host || (u.Scheme == "https" && req.URL.Scheme != "https") {
				return fmt.Errorf("redirect from %s to %s refused: it leaves the mesh endpoint", u.Host, req.URL.Host)
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
	return &Client{url: endpoint, gql: graphql.NewClient(endpoint, hc)}, nil
}

// loopback reports whether host is a loopback address, or a name that
// resolves to loopback addresses only.
func loopback(host string) bool {
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// SplitTraffic routes (100-weight)% of host's traffic to host and weight%
// to replicaHost, with the applyHTTPRoute mutation.
func (c *Client) SplitTraffic(ctx context.Context, namespace, host, replicaHost string, port, weight int) error {
	if weight < 0 || weight > 100 {
		return fmt.Errorf("weight %d: must be between 0 and 100", weight)
	}
	main, repl := 100-weight, weight
	_, err := ApplyHTTPRoute(ctx, c.gql, &ApplyHTTPRouteInput{
		Selector: &HTTPRouteSelectorInput{Namespace: namespace, Hosts: []string{host}},
		Rule: &HTTPRouteRuleInput{Route: []*HTTPRouteDestinationInput{
			{Destination: &DestinationInput{Host: host, Port: &PortSelectorInput{Number: port}}, Weight: &main},
			{Destination: &DestinationInput{Host: replicaHost, Port: &PortSelectorInput{Number: port}}, Weight: &repl},
		}},
	})
	if err != nil {
		return fmt.Errorf("applyHTTPRoute %s/%s at %s: %w", namespace, host, c.url, err)
	}
	return nil
}

// RemoveSplit removes the HTTP route of host (disableHTTPRoute).
func (c *Client) RemoveSplit(ctx context.Context, namespace, host string) error {
	_, err := DisableHTTPRoute(ctx, c.gql, &DisableHTTPRouteInput{Selector: &HTTPRouteSelectorInput{Namespace: namespace, Hosts: []string{host}}})
	if err != nil {
		return fmt.Errorf("disableHTTPRoute %s/%s at %s: %w", namespace, host, c.url, err)
	}
	return nil
}

// ErrNoMetrics means the service reported no value (not a zero).
var ErrNoMetrics = errors.New("no metrics for the service")

// Metrics is a service's recent rps and median latency.
type Metrics struct {
	RPS        float64
	LatencyP50 float64
}

// ServiceMetrics queries a service's metrics over the last seconds.
func (c *Client) ServiceMetrics(ctx context.Context, namespace, name string, seconds int) (Metrics, error) {
	resp, err := ServiceMetrics(ctx, c.gql, name, namespace, &seconds)
	if err != nil {
		return Metrics{}, fmt.Errorf("service metrics %s/%s at %s: %w", namespace, name, c.url, err)
	}
	if resp.Service == nil || resp.Service.Metrics == nil || resp.Service.Metrics.Rps == nil {
		return Metrics{}, fmt.Errorf("service %s/%s: %w", namespace, name, ErrNoMetrics)
	}
	m := Metrics{RPS: *resp.Service.Metrics.Rps}
	if resp.Service.Metrics.LatencyP50 != nil {
		m.LatencyP50 = *resp.Service.Metrics.LatencyP50
	}
	return m, nil
}
