// Package meshtest is a GraphQL server for tests that speaks the subset of
// Calisti's API in mesh/schema.graphql: it rejects every request that does
// not validate against that schema, checks the bearer token, and records the
// mutations it accepted.
package meshtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/orchhq/orch/plugins/mesh"
)

// Request is one accepted GraphQL request.
type Request struct {
	Operation string
	Field     string // the top-level field: applyHTTPRoute, service, ...
	Query     string
	Variables map[string]any
}

// Server is a running test server.
type Server struct {
	*httptest.Server
	Token string

	mu       sync.Mutex
	schema   *ast.Schema
	accepted []Request
	rejected int
	// Metrics answers the service query, keyed "namespace/name".
	Metrics map[string]mesh.Metrics
	// Fail makes every request answer with a GraphQL error.
	Fail bool
}

// New starts a server; token "" accepts requests without one.
func New(token string) *Server {
	s := &Server{Token: token, schema: gqlparser.MustLoadSchema(&ast.Source{Name: "schema.graphql", Input: mesh.Schema}), Metrics: map[string]mesh.Metrics{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Accepted returns the requests that validated.
func (s *Server) Accepted() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.accepted...)
}

// Rejected counts requests that did not validate.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var body struct {
		Query         string         `json:"query"`
		OperationName string         `json:"operationName"`
		Variables     map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad request body", http.StatusBadRequest)
		return
	}
	doc, errs := gqlparser.LoadQuery(s.schema, body.Query)
	var op *ast.OperationDefinition
	if len(errs) == 0 {
		op = doc.Operations.ForName(body.OperationName)
		if op == nil {
			errs = gqlerror.List{gqlerror.Errorf("operation %q not found", body.OperationName)}
		}
	}
	if len(errs) == 0 {
		if _, err := validator.VariableValues(s.schema, op, body.Variables); err != nil {
			errs = gqlerror.List{gqlerror.Errorf("%s", err.Error())}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(errs) > 0 || s.Fail {
		s.rejected++
		if s.Fail {
			errs = gqlerror.List{gqlerror.Errorf("service unavailable")}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": errs})
		return
	}
	field := op.SelectionSet[0].(*ast.Field)
	s.accepted = append(s.accepted, Request{Operation: body.OperationName, Field: field.Name, Query: body.Query, Variables: body.Variables})
	data := map[string]any{}
	switch field.Name {
	case "applyHTTPRoute", "disableHTTPRoute":
		data[field.Alias] = true
	case "service":
		args := field.ArgumentMap(body.Variables)
		name, _ := args["name"].(string)
		ns, _ := args["namespace"].(string)
		m, ok := s.Metrics[ns+"/"+name]
		if !ok {
			data[field.Alias] = nil
			break
		}
		data[field.Alias] = map[string]any{"metrics": map[string]any{"rps": m.RPS, "latencyP50": m.LatencyP50}}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

// SetMetrics sets what the service query answers for namespace/name.
func (s *Server) SetMetrics(namespace, name string, m mesh.Metrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Metrics[namespace+"/"+name] = m
}

// SetFail makes every request fail (true) or not.
func (s *Server) SetFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Fail = fail
}
