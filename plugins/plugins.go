// Package plugins is how orch acts on the outside world: operations run on
// nodes, workflow implementations, node types, and the registry that names
// them. Plugins know nothing of policies or the orchestrator.
package plugins

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/zclconf/go-cty/cty"
)

// Operation runs one lifecycle or custom operation of a node instance.
type Operation interface {
	Run(ctx context.Context, op *OperationContext) error
}

// OperationFunc adapts a function to Operation.
type OperationFunc func(ctx context.Context, op *OperationContext) error

// Run calls f.
func (f OperationFunc) Run(ctx context.Context, op *OperationContext) error { return f(ctx, op) }

// OperationContext is what an operation sees of its node.
type OperationContext struct {
	Deployment string
	// Execution is the id of the execution the operation runs in.
	Execution string
	Node      string
	Instance  string
	Types     []string // the node's type chain, most derived first
	Operation string
	Attempt   int
	// Dir is the blueprint's directory; relative paths resolve against it.
	Dir        string
	Properties map[string]any
	Inputs     map[string]any
	// Runtime holds the instance's runtime properties; an operation may
	// change it and orch stores it when the operation succeeds.
	Runtime map[string]any
	// Related are the nodes this node has relationships to (contained_in,
	// connected_to, depends_on), e.g. the cluster an app is contained in.
	Related []RelatedNode
	// Relationship is set for a relationship operation (preconfigure,
	// postconfigure, establish, unlink): the pair it runs for. Node,
	// Instance and Runtime are then the side's it runs on.
	Relationship *RelationshipInfo
	// Log records a progress event of the execution.
	Log func(level, msg string)
}

// RelationshipInfo is the instance pair a relationship operation runs for.
type RelationshipInfo struct {
	Type                       string // the relationship type
	Side                       string // "source" or "target": where it runs
	SourceNode, SourceInstance string
	TargetNode, TargetInstance string
}

// RelatedNode is a node at the other end of a relationship.
type RelatedNode struct {
	Kind       string // contained_in, connected_to, depends_on
	Name       string
	Types      []string
	Properties map[string]any
}

// Is reports whether the node is of type t (or derives from it).
func (n RelatedNode) Is(t string) bool {
	for _, x := range n.Types {
		if x == t {
			return true
		}
	}
	return false
}

// Workflow is a named workflow implementation (blueprint `uses`).
type Workflow interface {
	Run(ctx context.Context, wc WorkflowContext) error
}

// WorkflowFunc adapts a function to Workflow.
type WorkflowFunc func(ctx context.Context, wc WorkflowContext) error

// Run calls f.
func (f WorkflowFunc) Run(ctx context.Context, wc WorkflowContext) error { return f(ctx, wc) }

// Resumable is implemented by workflows that can safely run again after orch
// stopped in the middle of them; others are failed with a clear reason.
type Resumable interface {
	Resumable() bool
}

// Is reports whether the node is of type t (or derives from it).
func (n NodeInfo) Is(t string) bool { return slices.Contains(n.Types, t) }

// NodeInfo is a node of the deployment as a workflow sees it.
type NodeInfo struct {
	Name       string
	Types      []string
	Properties map[string]any
	Runtime    map[string]any
}

// NodeWatch is what an orch.node_changes policy asks to be watched on a
// node it targets.
type NodeWatch struct {
	Selector       string        // a label selector of what to watch; "" for all
	Settle, Resync time.Duration // debounce, and how often to report anyway
}

// NodeWatcher is implemented by a plugin that watches what node_changes
// policies target (the kubernetes plugin: a kubernetes.cluster's nodes).
type NodeWatcher interface {
	// CanWatch says why a node cannot be watched (nil: it can).
	CanWatch(node NodeInfo) error
	// Watch calls changed when the watched things change (settled) and
	// every resync, until ctx is done.
	Watch(ctx context.Context, node NodeInfo, w NodeWatch, changed func()) error
}

// ServiceLocator is implemented by a plugin that knows which mesh service a
// node is (the kubernetes plugin: a kubernetes.app's service and namespace),
// for the metric sources that poll per service.
type ServiceLocator interface {
	MeshService(node NodeInfo) (namespace, name string, ok bool)
}

// WorkflowContext is what a workflow implementation sees of its execution.
type WorkflowContext interface {
	Deployment() string
	Execution() string
	// Parameters are the parameters as plain values; Values as the typed
	// values they were bound to. Decode decodes them once into a plugin's
	// own struct (see plugins.Decode).
	Parameters() map[string]any
	Values() map[string]cty.Value
	Decode(dst any) error
	DryRun() bool
	Nodes() []NodeInfo
	// Event records a progress event ("info", "warning", "error").
	Event(level, msg string)
}

// RecoverableError marks an error worth retrying (a busy API server, a
// connection refused); orch retries it with backoff up to the operation's
// max_retries.
type RecoverableError struct {
	Err        error
	RetryAfter time.Duration // 0: orch's backoff decides
}

func (e *RecoverableError) Error() string { return e.Err.Error() }
func (e *RecoverableError) Unwrap() error { return e.Err }

// Recoverable marks err as worth retrying.
func Recoverable(err error) error {
	if err == nil {
		return nil
	}
	return &RecoverableError{Err: err}
}

// IsRecoverable reports whether err (or one it wraps) is recoverable, and
// the delay the plugin asked for.
func IsRecoverable(err error) (bool, time.Duration) {
	var re *RecoverableError
	if errors.As(err, &re) {
		return true, re.RetryAfter
	}
	return false, 0
}

// Registry names the operations, workflows and type files plugins provide.
type Registry struct {
	operations map[string]Operation
	workflows  map[string]Workflow
	types      map[string][]byte
	formats    map[string]func(string) error
	// meshTypes are the node types whose nodes are mesh services (what a
	// plugin's ServiceLocator answers for).
	meshTypes []string
}

// RegisterMeshServiceType declares that nodes of a type are services of
// the mesh: a blueprint's calisti source may poll them.
func (r *Registry) RegisterMeshServiceType(name string) { r.meshTypes = append(r.meshTypes, name) }

// MeshServiceTypes are the node types registered as mesh services.
func (r *Registry) MeshServiceTypes() []string { return slices.Clone(r.meshTypes) }

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{operations: map[string]Operation{}, workflows: map[string]Workflow{}, types: map[string][]byte{},
		formats: map[string]func(string) error{}}
}

// RegisterFormat names a check of string values ("kubernetes.label_selector")
// that properties and parameters declare with `format = "NAME"`; orch
// validate runs it on every value given.
func (r *Registry) RegisterFormat(name string, check func(string) error) {
	r.formats[name] = check
}

// Formats returns the registered formats.
func (r *Registry) Formats() map[string]func(string) error { return maps.Clone(r.formats) }

// Plugin registers what it provides.
type Plugin interface {
	Register(r *Registry) error
}

// Add registers plugins in order.
func (r *Registry) Add(ps ...Plugin) error {
	for _, p := range ps {
		if err := p.Register(r); err != nil {
			return err
		}
	}
	return nil
}

// RegisterOperation names an operation implementation ("script").
func (r *Registry) RegisterOperation(name string, op Operation) error {
	if _, dup := r.operations[name]; dup {
		return fmt.Errorf("operation implementation %q registered twice", name)
	}
	r.operations[name] = op
	return nil
}

// RegisterWorkflow names a workflow implementation ("kubernetes.burst").
func (r *Registry) RegisterWorkflow(name string, w Workflow) error {
	if _, dup := r.workflows[name]; dup {
		return fmt.Errorf("workflow implementation %q registered twice", name)
	}
	r.workflows[name] = w
	return nil
}

// RegisterTypes adds a type file (node_type and policy_type blocks in HCL).
func (r *Registry) RegisterTypes(name string, src []byte) {
	r.types[name] = src
}

// Operation returns the named operation implementation.
func (r *Registry) Operation(name string) (Operation, bool) {
	op, ok := r.operations[name]
	return op, ok
}

// Workflow returns the named workflow implementation.
func (r *Registry) Workflow(name string) (Workflow, bool) {
	w, ok := r.workflows[name]
	return w, ok
}

// Types returns the registered type files.
func (r *Registry) Types() map[string][]byte {
	out := make(map[string][]byte, len(r.types))
	for k, v := range r.types {
		out[k] = v
	}
	return out
}

// OperationNames lists the operation implementations, sorted.
func (r *Registry) OperationNames() []string { return slices.Sorted(maps.Keys(r.operations)) }

// WorkflowNames lists the workflow implementations, sorted.
func (r *Registry) WorkflowNames() []string { return slices.Sorted(maps.Keys(r.workflows)) }
