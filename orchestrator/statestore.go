package orchestrator

import (
	"context"
	"time"

	"github.com/orchhq/orch/workflows"
)

// StateStore is where orch keeps its state: deployments and their
// blueprints and instances, executions and their events, policy state.
// Two implement it: Store (one bbolt file, for one orch process) and
// EtcdStore (etcd, shared by replicas of orch serve); one conformance
// suite checks both.
type StateStore interface {
	// Path names the store: the bbolt file, or the etcd URL.
	Path() string
	Close() error

	CreateDeployment(ctx context.Context, bp *BlueprintRecord, d *Deployment) error
	Deployment(ctx context.Context, id string) (*Deployment, error)
	Deployments(ctx context.Context) ([]*Deployment, error)
	DeleteDeployment(ctx context.Context, id string) error
	Blueprint(ctx context.Context, id string) (*BlueprintRecord, error)
	PutBlueprint(ctx context.Context, bp *BlueprintRecord) error
	SwitchDeployment(ctx context.Context, id string, u *workflows.Update, instances []*workflows.NodeInstance) error

	PutInstance(ctx context.Context, deployment string, inst *workflows.NodeInstance) error
	PutInstances(ctx context.Context, deployment string, insts []*workflows.NodeInstance) error
	DeleteInstances(ctx context.Context, deployment string, ids []string) error
	PutOutputs(ctx context.Context, deployment string, outputs map[string]any) error

	CreateExecution(ctx context.Context, x *workflows.Execution, with *workflows.Record) error
	PutExecution(ctx context.Context, x *workflows.Execution) error
	Execution(ctx context.Context, id string) (*workflows.Execution, error)
	Executions(ctx context.Context, deployment string) ([]*workflows.Execution, error)
	Unended(ctx context.Context, deployment string) ([]*workflows.Execution, error)
	Prune(ctx context.Context, before time.Time) (int, error)
	AppendEvents(ctx context.Context, evs []workflows.Event) error
	Events(ctx context.Context, execution string, after uint64) ([]workflows.Event, error)

	PolicyState(ctx context.Context, key string, v any) error
	PutPolicyState(ctx context.Context, key string, v any) error
}

var _ StateStore = (*Store)(nil)
