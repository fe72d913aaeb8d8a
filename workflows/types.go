// Package workflows is orch's execution engine: executions of named
// workflows on deployments, one running per deployment and the rest queued,
// task graphs run in dependency order with timeouts, retries and cancel,
// and the built-in install and uninstall workflows.
package workflows

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/orchhq/orch/blueprints"
)

// Status of an execution.
type Status string

// Execution statuses, as Cloudify's.
const (
	Pending    Status = "pending"
	Queued     Status = "queued"
	Started    Status = "started"
	Succeeded  Status = "succeeded"
	Failed     Status = "failed"
	Cancelling Status = "cancelling"
	Cancelled  Status = "cancelled"
)

// Ended reports whether s is final.
func (s Status) Ended() bool { return s == Succeeded || s == Failed || s == Cancelled }

// Execution is one run of a workflow on a deployment.
type Execution struct {
	ID         string         `json:"id"`
	Deployment string         `json:"deployment"`
	Workflow   string         `json:"workflow"`
	Parameters map[string]any `json:"parameters,omitempty"`
	// Args are the parameters as given (defaults are re-read from the
	// blueprint when the execution runs, so sensitive values are not stored).
	Args map[string]string `json:"args,omitempty"`
	// Values are parameters given as typed values (by a policy trigger),
	// each as cty JSON with its type; Sensitive names those not stored.
	Values    map[string]json.RawMessage `json:"values,omitempty"`
	Sensitive []string                   `json:"sensitive_values,omitempty"`
	DryRun    bool                       `json:"dry_run,omitempty"`
	Status    Status                     `json:"status"`
	Error     string                     `json:"error,omitempty"`
	CreatedAt time.Time                  `json:"created_at"`
	StartedAt *time.Time                 `json:"started_at,omitempty"`
	EndedAt   *time.Time                 `json:"ended_at,omitempty"`
	// Resumes counts how often the execution was resumed after a restart.
	Resumes int `json:"resumes,omitempty"`
	// Change is what a scale or heal changes, stored before it acts, so
	// a resumed run (after a crash, or `orch executions resume`) carries
	// on with the same instances instead of adding others.
	Change *Change `json:"change,omitempty"`
	// Steps are the progress of a workflow written in the blueprint: each
	// step's outcome (StepStarted, ...), and "STEP@INSTANCE" for each
	// instance a step is done with.
	Steps map[string]string `json:"steps,omitempty"`
	// Update is a deployment update's plan and progress (workflow
	// UpdateWorkflow).
	Update *Update `json:"update,omitempty"`
}

// Change is the instances a scale adds and removes, or a heal reinstalls.
type Change struct {
	Added   []*NodeInstance `json:"added,omitempty"`
	Removed []string        `json:"removed,omitempty"`
	Healed  []string        `json:"healed,omitempty"`
	// Phase is how far a heal got: "" (uninstalling), "install".
	Phase string `json:"phase,omitempty"`
}

// Event is one entry of an execution's append-only event log.
type Event struct {
	Seq       uint64    `json:"seq,omitempty"`
	Time      time.Time `json:"time"`
	Execution string    `json:"execution"`
	Level     string    `json:"level"`
	Type      string    `json:"type"`
	Node      string    `json:"node,omitempty"`
	Instance  string    `json:"instance,omitempty"`
	Operation string    `json:"operation,omitempty"`
	// Step is the step of a workflow written in the blueprint ("drain",
	// "grow/scale" inside an inline step).
	Step    string `json:"step,omitempty"`
	Message string `json:"message"`
}

// Event types.
const (
	EventWorkflowStarted    = "workflow_started"
	EventWorkflowSucceeded  = "workflow_succeeded"
	EventWorkflowFailed     = "workflow_failed"
	EventWorkflowCancelled  = "workflow_cancelled"
	EventWorkflowQueued     = "workflow_queued"
	EventWorkflowResumed    = "workflow_resumed"
	EventOperationStarted   = "operation_started"
	EventOperationSucceeded = "operation_succeeded"
	EventOperationFailed    = "operation_failed"
	EventOperationRetrying  = "operation_retrying"
	EventOperationSkipped   = "operation_skipped"
	EventLog                = "log"
)

// Node instance states, as Cloudify's lifecycle.
const (
	StateUninitialized = "uninitialized"
	StateCreated       = "created"
	StateConfigured    = "configured"
	StateStarted       = "started"
	StateStopped       = "stopped"
	StateDeleted       = "deleted"
)

// stateAfter is the state a node instance reaches when an operation
// succeeds (or is absent).
var stateAfter = map[string]string{
	"create": StateCreated, "configure": StateConfigured, "start": StateStarted,
	"stop": StateStopped, "delete": StateDeleted,
}

// stateRank orders install states, so install skips what is done.
var stateRank = map[string]int{
	StateUninitialized: 0, StateCreated: 1, StateConfigured: 2, StateStarted: 3,
	StateStopped: 4, StateDeleted: 5,
}

// NodeInstance is the runtime side of a node: one of its instances.
type NodeInstance struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	State string `json:"state"`
	// Index orders a node's instances by creation (scale removes the
	// newest; all_to_one connects to the oldest).
	Index int `json:"index,omitempty"`
	// Host is the instance this one is contained in ("": none); Group
	// the group instance it was created for ("": none).
	Host  string `json:"host,omitempty"`
	Group string `json:"group,omitempty"`
	// Links are its relationships to target instances.
	Links   []*Link        `json:"relationships,omitempty"`
	Runtime map[string]any `json:"runtime_properties,omitempty"`
}

// Link is a relationship of a source instance to one target instance, with
// the relationship operations done for the pair.
type Link struct {
	Rel    int      `json:"rel"` // the index of the node's relationship
	Type   string   `json:"type"`
	Target string   `json:"target"`
	Done   []string `json:"done,omitempty"`
}

func (l *Link) done(op string) bool { return slices.Contains(l.Done, op) }

// Target is a deployment as the engine acts on it: its resolved plan and
// node instances.
type Target struct {
	Deployment string
	Dir        string // the blueprint's directory
	Plan       *blueprints.Plan
	Instances  map[string]*NodeInstance // by instance id
	// mu guards the instances while an execution's tasks change them.
	mu sync.Mutex
}

// Of lists the instances of a node, oldest first.
func (t *Target) Of(node string) []*NodeInstance { return OfNode(t.Instances, node) }

// OfNode lists the instances of a node among instances, oldest first.
func OfNode(instances map[string]*NodeInstance, node string) []*NodeInstance {
	var out []*NodeInstance
	for _, inst := range instances {
		if inst.Node == node {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// InstanceID is the id of a node's only instance, or "" when it has none
// or several (a metric orch makes for the node names the instance then).
func (t *Target) InstanceID(node string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if insts := t.Of(node); len(insts) == 1 {
		return insts[0].ID
	}
	return ""
}

// Node returns the plan node named name, or nil.
func (t *Target) Node(name string) *blueprints.PlanNode {
	for _, n := range t.Plan.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Store is what the engine needs of persistence. orchestrator implements it
// with bbolt.
type Store interface {
	PutExecution(ctx context.Context, x *Execution) error
	// CreateExecution stores a new execution (refusing an id in use)
	// and, in the same transaction, with (when not nil).
	CreateExecution(ctx context.Context, x *Execution, with *Record) error
	Execution(ctx context.Context, id string) (*Execution, error)
	Executions(ctx context.Context, deployment string) ([]*Execution, error)
	// Unended lists the executions not ended yet, of a deployment or
	// (with "") of all, in creation order.
	Unended(ctx context.Context, deployment string) ([]*Execution, error)
	// AppendEvents adds events to executions' logs, assigning Seq.
	AppendEvents(ctx context.Context, evs []Event) error
	Target(ctx context.Context, deployment string) (*Target, error)
	PutInstance(ctx context.Context, deployment string, inst *NodeInstance) error
	// PutInstances stores several instances and DeleteInstances removes
	// some, each in one transaction.
	PutInstances(ctx context.Context, deployment string, insts []*NodeInstance) error
	DeleteInstances(ctx context.Context, deployment string, ids []string) error
	// PutOutputs stores the deployment's outputs as last evaluated
	// (redacted).
	PutOutputs(ctx context.Context, deployment string, outputs map[string]any) error
}

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

var idMu sync.Mutex
var lastID string

// NewID returns a time-ordered id: 10 characters of milliseconds and 6
// random ones, Crockford base32, so ids sort in creation order.
func NewID() string {
	idMu.Lock()
	defer idMu.Unlock()
	for {
		ms := uint64(time.Now().UnixMilli())
		var b strings.Builder
		for i := 9; i >= 0; i-- {
			b.WriteByte(crockford[(ms>>(5*uint(i)))&31])
		}
		var r [6]byte
		_, _ = rand.Read(r[:])
		for _, x := range r {
			b.WriteByte(crockford[x&31])
		}
		id := b.String()
		if id > lastID {
			lastID = id
			return id
		}
	}
}

// validID reports whether id has NewID's shape: 16 Crockford base32
// characters.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if strings.IndexByte(crockford, id[i]) < 0 {
			return false
		}
	}
	return true
}

// keepValues stores typed parameters in the execution, except sensitive
// ones, which it returns (kept in memory only).
func (x *Execution) keepValues(values map[string]cty.Value) (map[string]cty.Value, error) {
	var secret map[string]cty.Value
	for k, v := range values {
		if v.ContainsMarked() {
			if secret == nil {
				secret = map[string]cty.Value{}
			}
			secret[k] = v
			x.Sensitive = append(x.Sensitive, k)
			continue
		}
		b, err := ctyjson.Marshal(v, cty.DynamicPseudoType)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", k, err)
		}
		if x.Values == nil {
			x.Values = map[string]json.RawMessage{}
		}
		x.Values[k] = b
	}
	sort.Strings(x.Sensitive)
	return secret, nil
}

// values reads the typed parameters back, with the sensitive ones kept in
// memory (secret); a sensitive one lost in a restart is an error.
func (x *Execution) values(secret map[string]cty.Value) (map[string]cty.Value, error) {
	out := make(map[string]cty.Value, len(x.Values)+len(x.Sensitive))
	for k, raw := range x.Values {
		v, err := ctyjson.Unmarshal(raw, cty.DynamicPseudoType)
		if err != nil {
			return nil, fmt.Errorf("parameter %q: %w", k, err)
		}
		out[k] = v
	}
	for _, k := range x.Sensitive {
		v, ok := secret[k]
		if !ok {
			return nil, fmt.Errorf("parameter %q is sensitive and was not stored; orch stopped before the execution ran: run it again", k)
		}
		out[k] = v
	}
	return out, nil
}
