package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orchhq/orch/orchestrator"
	"github.com/orchhq/orch/policies"
	"github.com/orchhq/orch/workflows"
)

// Endpoint is where a running orch serve listens, as written to the
// endpoint file.
type Endpoint struct {
	URL   string `json:"url"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
	// CA is the certificate file an API over TLS is checked with.
	CA string `json:"ca,omitempty"`
}

// EndpointPath is the endpoint file of a store: beside a state file, or
// for etcd one per store URL in the user's state directory (where serve
// writes it and the CLI looks).
func EndpointPath(store string) string {
	if !orchestrator.IsEtcdURL(store) {
		return store + ".api"
	}
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".local", "state")
		}
	}
	sum := sha256.Sum256([]byte(store))
	return filepath.Join(dir, "orch", "etcd-"+hex.EncodeToString(sum[:6])+".api")
}

// NewToken returns a random API token.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// WriteEndpoint writes the endpoint file, readable by its owner only; it
// replaces an old one whole.
func WriteEndpoint(path string, e Endpoint) error {
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("endpoint file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".orch-api-*")
	if err != nil {
		return fmt.Errorf("endpoint file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("endpoint file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("endpoint file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("endpoint file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("endpoint file: %w", err)
	}
	return nil
}

// ReadEndpoint reads an endpoint file.
func ReadEndpoint(path string) (Endpoint, error) {
	var e Endpoint
	data, err := os.ReadFile(path)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, fmt.Errorf("endpoint file %s: %w", path, err)
	}
	return e, nil
}

// Client calls a running orch serve.
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// NewClient returns a client of the API at url.
func NewClient(url, token string) *Client {
	return &Client{URL: url, Token: token, HTTP: &http.Client{Timeout: maxWait + 30*time.Second}}
}

// WithCA makes the client trust the certificates the PEM file caFile
// holds (an API over TLS with a private CA; "" keeps the system's).
func (c *Client) WithCA(caFile string) error {
	if caFile == "" {
		return nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("api CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("api CA %s: no PEM certificate in it", caFile)
	}
	c.HTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("orch serve at %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("orch serve at %s: %w", c.URL, err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("orch serve at %s: %s", c.URL, resp.Status)
		}
		if e.Code == "not_found" {
			return notFound{e}
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("orch serve at %s: %s %s: %w", c.URL, method, path, err)
	}
	return nil
}

// notFound is an API error that matches orchestrator.ErrNotFound.
type notFound struct{ e *Error }

func (n notFound) Error() string        { return n.e.Message }
func (n notFound) Unwrap() error        { return n.e }
func (n notFound) Is(target error) bool { return target == orchestrator.ErrNotFound }

// Health checks the server and the token.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h)
	return h, err
}

// Deployments lists deployments.
func (c *Client) Deployments(ctx context.Context) ([]*orchestrator.Deployment, error) {
	var out []*orchestrator.Deployment
	return out, c.do(ctx, http.MethodGet, "/v1/deployments", nil, &out)
}

// Deployment returns a deployment.
func (c *Client) Deployment(ctx context.Context, id string) (*orchestrator.Deployment, error) {
	var out orchestrator.Deployment
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Deploy deploys a blueprint; the server reads the files (it runs on the
// same machine), so paths should be absolute.
func (c *Client) Deploy(ctx context.Context, req orchestrator.DeployRequest) (*orchestrator.Deployment, *workflows.Execution, error) {
	if len(req.InputValues) > 0 {
		return nil, nil, errors.New("deploy through orch serve: typed input values cannot be sent; give them as -i NAME=VALUE or in an inputs file")
	}
	var out DeployResponse
	if err := c.do(ctx, http.MethodPost, "/v1/deployments", req, &out); err != nil {
		return nil, nil, err
	}
	return out.Deployment, out.Execution, nil
}

// Update plans a deployment update through serve and submits it.
func (c *Client) Update(ctx context.Context, req orchestrator.UpdateRequest) (*workflows.Update, *workflows.Execution, error) {
	if len(req.InputValues) > 0 {
		return nil, nil, errors.New("update through orch serve: typed input values cannot be sent; give them as -i NAME=VALUE or in an inputs file")
	}
	var out UpdateResponse
	if err := c.do(ctx, http.MethodPost, "/v1/deployments/"+url.PathEscape(req.ID)+"/update", req, &out); err != nil {
		return nil, nil, err
	}
	return out.Update, out.Execution, nil
}

// StartUndeploy submits uninstall; the server deletes the deployment when
// it succeeds.
func (c *Client) StartUndeploy(ctx context.Context, id string) (*workflows.Execution, error) {
	var out workflows.Execution
	if err := c.do(ctx, http.MethodDelete, "/v1/deployments/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Workflows lists a deployment's workflows.
func (c *Client) Workflows(ctx context.Context, deployment string) ([]orchestrator.WorkflowInfo, error) {
	var out []orchestrator.WorkflowInfo
	return out, c.do(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(deployment)+"/workflows", nil, &out)
}

// Submit queues a workflow run.
func (c *Client) Submit(ctx context.Context, req workflows.Request) (*workflows.Execution, error) {
	var out workflows.Execution
	if err := c.do(ctx, http.MethodPost, "/v1/executions", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Executions lists executions (of a deployment, or all).
func (c *Client) Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error) {
	var out []*workflows.Execution
	return out, c.do(ctx, http.MethodGet, "/v1/executions?deployment="+url.QueryEscape(deployment), nil, &out)
}

// Execution returns an execution by id or unambiguous prefix.
func (c *Client) Execution(ctx context.Context, id string) (*workflows.Execution, error) {
	var out workflows.Execution
	if err := c.do(ctx, http.MethodGet, "/v1/executions/"+url.PathEscape(id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Cancel cancels a queued or running execution.
func (c *Client) Cancel(ctx context.Context, id string) (*workflows.Execution, error) {
	var out workflows.Execution
	if err := c.do(ctx, http.MethodPost, "/v1/executions/"+url.PathEscape(id)+"/cancel", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Resume queues a failed or cancelled execution again.
func (c *Client) Resume(ctx context.Context, id string) (*workflows.Execution, error) {
	var out workflows.Execution
	if err := c.do(ctx, http.MethodPost, "/v1/executions/"+url.PathEscape(id)+"/resume", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Events returns the events after seq, waiting up to wait for new ones.
func (c *Client) Events(ctx context.Context, id string, after uint64, wait time.Duration) (*EventsResponse, error) {
	var out EventsResponse
	q := "?after=" + strconv.FormatUint(after, 10)
	if wait > 0 {
		q += "&wait=" + wait.String()
	}
	if err := c.do(ctx, http.MethodGet, "/v1/executions/"+url.PathEscape(id)+"/events"+q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Policies returns the live state of the policies of a deployment ("" for all).
func (c *Client) Policies(ctx context.Context, deployment string) ([]policies.PolicyStatus, error) {
	var out []policies.PolicyStatus
	return out, c.do(ctx, http.MethodGet, "/v1/policies?deployment="+url.QueryEscape(deployment), nil, &out)
}

// SetPause pauses (p non-nil) or resumes a deployment's policy ("" for all)
// and returns the policies changed.
func (c *Client) SetPause(ctx context.Context, deployment, policy string, p *policies.Pause) ([]string, error) {
	verb := "resume"
	if p != nil {
		verb = "pause"
	}
	var out []string
	return out, c.do(ctx, http.MethodPost, "/v1/policies/"+url.PathEscape(deployment)+"/"+verb, PauseRequest{Policy: policy, Pause: p}, &out)
}
