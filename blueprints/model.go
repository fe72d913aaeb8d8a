// Package blueprints is orch's blueprint language: it parses HCL blueprints into
// structs, validates them (references, types, cycles, duplicates) and resolves a
// blueprint with deployment inputs into a Plan. It knows no state and touches no
// cluster.
package blueprints

import (
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// Blueprint is a decoded (not yet resolved) blueprint, possibly spread over
// several files and imports. Every element keeps its DeclRange so later
// diagnostics can point at the source.
type Blueprint struct {
	// Main are the files the user named, in order.
	Main []string
	// Sources holds the text of every user file read (named files and imports),
	// so a stored blueprint can always be parsed again.
	Sources map[string][]byte
	// Files are the parsed files, including built-in type files, for
	// printing diagnostics with source lines.
	Files map[string]*hcl.File

	Inputs    []*Input
	Outputs   []*Output
	NodeTypes []*NodeType
	Nodes     []*Node
	// RelationshipTypes are `relationship_type` blocks, built-in ones
	// (orch.DependsOn, orch.ConnectedTo, orch.ContainedIn) included.
	RelationshipTypes []*RelationshipType
	Groups            []*Group
	Workflows         []*Workflow
	PolicyTypes       []*PolicyType
	Policies          []*Policy
	// MetricSources are `source` blocks: metrics serve polls.
	MetricSources []*Source
}

// Input is an `input "name" {}` block.
type Input struct {
	Name        string
	Description string
	Type        cty.Type // cty.DynamicPseudoType when not declared
	Default     cty.Value
	HasDefault  bool
	Sensitive   bool
	DeclRange   hcl.Range
}

// Output is an `output "name" {}` block.
type Output struct {
	Name        string
	Description string
	Value       hcl.Expression
	Sensitive   bool
	DeclRange   hcl.Range
}

// NodeType is a `node_type "name" {}` block, or a built-in type a plugin ships.
type NodeType struct {
	Name         string
	Description  string
	DerivedFrom  string
	DerivedRange hcl.Range
	Properties   []*Property
	Operations   []*Operation
	Builtin      bool
	DeclRange    hcl.Range
}

// Property is a `property "name" {}` block of a node type (also used for
// workflow and policy type parameters).
type Property struct {
	Name        string
	Description string
	Type        cty.Type
	Default     hcl.Expression // nil when absent
	Required    bool
	// Check constrains the value beyond its type (format, one_of, range);
	// nil: the type is the only constraint.
	Check     *ValueCheck
	DeclRange hcl.Range
}

// ValueCheck is what a property or parameter declares its value must be,
// beside its type, as Terraform's validation blocks do: every value given
// in a blueprint is checked against it when the blueprint is validated, with
// the diagnostic on the value's range.
type ValueCheck struct {
	// Format is a named format of a string value: "duration" (a Go
	// duration, longer than zero unless Minimum is 0), "regex" (an RE2
	// regular expression), or one a plugin registers (Catalog.Formats).
	Format      string
	FormatRange hcl.Range
	// OneOf are the values allowed (an enum); empty: any.
	OneOf      []cty.Value
	OneOfRange hcl.Range
	// Minimum and Maximum bound a number (a duration's seconds); nil: no
	// bound. Exclusive bounds leave the bound itself out.
	Minimum, Maximum                   *float64
	ExclusiveMinimum, ExclusiveMaximum bool
	RangeRange                         hcl.Range
}

// Validation is a `validation { condition, error_message }` block of a
// policy type: a rule over several parameters (`param.NAME`), checked for
// every policy of the type when the blueprint is validated.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage string
	DeclRange    hcl.Range
}

// Relationship kinds between nodes.
const (
	ContainedIn = "contained_in"
	ConnectedTo = "connected_to"
	DependsOn   = "depends_on"
)

// The built-in relationship types; every relationship type derives from
// one of them, and its kind is the built-in it derives from.
const (
	DependsOnType   = "orch.DependsOn"
	ConnectedToType = "orch.ConnectedTo"
	ContainedInType = "orch.ContainedIn"
)

// Connection types of a relationship between multi-instance nodes, as
// Cloudify's connection_type.
const (
	AllToAll = "all_to_all" // every source instance to every target instance (the default)
	AllToOne = "all_to_one" // every source instance to one target instance
)

// Relationship operations, and the sides they run on.
const (
	Preconfigure  = "preconfigure"
	Postconfigure = "postconfigure"
	Establish     = "establish"
	Unlink        = "unlink"

	SourceSide = "source"
	TargetSide = "target"
)

// RelationshipOperationNames are the operations a relationship may have.
var RelationshipOperationNames = []string{Preconfigure, Postconfigure, Establish, Unlink}

// Relationship is one edge from a node to another node: a contained_in,
// connected_to or depends_on attribute, or a `relationship` block.
type Relationship struct {
	Kind   string
	Target string
	Range  hcl.Range
	// Type is the relationship type (the kind's built-in type for the
	// attributes); TypeRange where a block names it.
	Type      string
	TypeRange hcl.Range
	// ConnectionType is AllToAll or AllToOne ("": AllToAll).
	ConnectionType      string
	ConnectionTypeRange hcl.Range
	// Operations are the block's own relationship operations (Side set).
	Operations []*Operation
}

// RelationshipType is a `relationship_type "name" {}` block: operations run
// on the source or the target side of every related instance pair.
type RelationshipType struct {
	Name         string
	Description  string
	DerivedFrom  string
	DerivedRange hcl.Range
	Operations   []*Operation // Side set
	Builtin      bool
	DeclRange    hcl.Range
}

// Instances is a node's or group's `instances { default, min, max }`.
type Instances struct {
	Default, Min int
	// Max is the most instances; Unbounded for none.
	Max int
	// Declared is false for a node without an instances block: exactly
	// one instance, never scaled.
	Declared  bool
	DeclRange hcl.Range
}

// Unbounded is Instances.Max when there is no maximum.
const Unbounded = -1

// SingleInstance is the instances of a node that declares none.
var SingleInstance = Instances{Default: 1, Min: 1, Max: 1}

// Group is a `group "name" { members = [...] instances {...} }` block: nodes
// scaled as one unit.
type Group struct {
	Name         string
	Members      []string
	MemberRanges []hcl.Range
	Instances    Instances
	DeclRange    hcl.Range
}

// Node is a `node "name" {}` block.
type Node struct {
	Name          string
	Type          string
	TypeRange     hcl.Range
	Properties    hcl.Expression // nil when absent
	Relationships []Relationship
	Operations    []*Operation
	Instances     Instances
	DeclRange     hcl.Range
}

// Operation is an `operation "name" {}` block of a node or node type.
type Operation struct {
	Name string
	// Side is "source" or "target" for a relationship operation, "" for
	// a node's.
	Side           string
	Implementation string
	ImplRange      hcl.Range
	Inputs         hcl.Expression // nil when absent
	Timeout        time.Duration
	MaxRetries     int
	RetryInterval  time.Duration
	DeclRange      hcl.Range
}

// Operation defaults, as Cloudify's: a few retries for recoverable errors.
const (
	DefaultOperationTimeout = 5 * time.Minute
	DefaultMaxRetries       = 3
	DefaultRetryInterval    = time.Second
)

// Lifecycle operations run by install (in this order) and uninstall.
var (
	InstallOperations   = []string{"create", "configure", "start"}
	UninstallOperations = []string{"stop", "delete"}
)

// Workflow is a `workflow "name" {}` block.
type Workflow struct {
	Name        string
	Description string
	Uses        string
	UsesRange   hcl.Range
	Parameters  []*Property
	// Timeout bounds one run (DefaultWorkflowTimeout when not given).
	Timeout time.Duration
	// Builtin is set for the workflows every deployment has (core.hcl);
	// a blueprint's own workflow of the same name replaces one.
	Builtin bool
	// Steps are a workflow written in the blueprint (no Uses): TOSCA's
	// imperative workflow. Preconditions are checked before it starts.
	Steps         []*Step
	Preconditions []*Precondition
	DeclRange     hcl.Range
}

// Step activities: exactly one per step.
const (
	CallOperation = "call_operation"
	SetState      = "set_state"
	Delegate      = "delegate"
	Inline        = "inline"
)

// StepActivities are the activities a step may have.
var StepActivities = []string{CallOperation, SetState, Delegate, Inline}

// DelegateWorkflows are the built-in workflows a step may delegate to,
// on its target's instances.
var DelegateWorkflows = []string{"install", "uninstall", "start", "stop", "restart"}

// InstanceStates are the states of a node instance, for set_state and
// preconditions.
var InstanceStates = []string{"uninitialized", "created", "configured", "started", "stopped", "deleted"}

// Step is a `step "name" {}` block of a workflow.
type Step struct {
	Name string
	// Target is the node (or, TargetGroup, the group) whose instances
	// the step runs on; "" for an inline step.
	Target      string
	TargetGroup bool
	TargetRange hcl.Range
	// Activity is one of StepActivities; Value its operation, state,
	// delegated workflow or inlined workflow.
	Activity      string
	Value         string
	ActivityRange hcl.Range
	// Parameters are an inline step's parameters for its workflow;
	// Inputs a call_operation's inputs over the operation's own.
	Parameters hcl.Expression
	Inputs     hcl.Expression
	OnSuccess  []StepRef
	OnFailure  []StepRef
	DeclRange  hcl.Range
}

// StepRef is a reference to a step of the same workflow.
type StepRef struct {
	Name  string
	Range hcl.Range
}

// Precondition is a `precondition {}` block of a workflow: checked on
// every instance of its target before the workflow starts.
type Precondition struct {
	Target       string
	TargetGroup  bool
	TargetRange  hcl.Range
	Condition    hcl.Expression
	ErrorMessage string
	DeclRange    hcl.Range
}

// BuiltinWorkflowPrefix starts the `uses` of the workflows orch's engine
// runs itself (install, scale, heal, ...): "orch.scale".
const BuiltinWorkflowPrefix = "orch."

// Workflows the blueprint may not replace: deploy and undeploy run them.
var ReservedWorkflows = []string{"install", "uninstall"}

// DefaultWorkflowTimeout bounds a plugin workflow's run when its block
// gives no timeout: no run holds its deployment's queue for good.
const DefaultWorkflowTimeout = time.Hour

// PolicyType is a `policy_type "name" {}` block: parameters and named
// conditions over metric windows. A type with Uses set is implemented in Go
// and its conditions need no `when`.
type PolicyType struct {
	Name        string
	Description string
	Uses        string
	Parameters  []*Property
	Conditions  []*Condition
	Validations []*Validation
	Builtin     bool
	DeclRange   hcl.Range
}

// Condition is a `condition "name" { when = ... }` block of a policy type.
type Condition struct {
	Name        string
	Description string
	When        hcl.Expression // nil for Go-implemented types
	// Direction is "up" for a condition that scales up (the one
	// on_missing_data = "scale_up" fires), "down" for one that scales
	// down; "" when it does neither or it depends on parameters.
	Direction string
	// Values names the values a Go-implemented condition reports (what
	// trigger parameters read as values.NAME); nil: not declared.
	Values    []string
	DeclRange hcl.Range
}

// Policy is a `policy "name" {}` block.
type Policy struct {
	Name         string
	Type         string
	TypeRange    hcl.Range
	Targets      []string
	TargetRanges []hcl.Range
	Properties   hcl.Expression // nil when absent
	Triggers     []*Trigger
	// OnMissingData is what the policy does while a window it reads has
	// no data or its source fails: "hold" (default), "scale_up" or
	// "trigger" (the policy's `trigger "missing_data"`).
	OnMissingData      MissingData
	OnMissingDataRange hcl.Range
	// MinHosts is how many hosts must report in a window for it to count
	// (0: one is enough).
	MinHosts int
	// InitialDelay is the grace after the policy starts being evaluated
	// during which nothing fires; nil: one window length.
	InitialDelay *time.Duration
	DeclRange    hcl.Range
}

// MissingData is what a policy does while a window it reads has no data.
type MissingData string

// The on_missing_data modes.
const (
	MissingHold    MissingData = "hold"     // do nothing (the default); the decision log says so
	MissingScaleUp MissingData = "scale_up" // fire the condition with direction = "up"
	MissingTrigger MissingData = "trigger"  // run the policy's trigger "missing_data"
)

// MissingDataModes are the on_missing_data values, for checks and hints.
var MissingDataModes = []MissingData{MissingHold, MissingScaleUp, MissingTrigger}

// MissingDataCondition is the pseudo-condition a policy with
// on_missing_data = "trigger" fires while its data is missing.
const MissingDataCondition = "missing_data"

// Trigger is a `trigger "condition" {}` block of a policy: when the condition
// fires, the workflow runs with the parameters.
type Trigger struct {
	Condition     string
	Workflow      string
	WorkflowRange hcl.Range
	Parameters    hcl.Expression // nil when absent
	DeclRange     hcl.Range
}

// Input returns the input named name, or nil.
func (b *Blueprint) Input(name string) *Input {
	for _, in := range b.Inputs {
		if in.Name == name {
			return in
		}
	}
	return nil
}
