package workflows

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
)

// lifecycle runs install (create, configure, start of every node, a node
// after the nodes it relates to) or uninstall (stop, delete, in reverse).
// Independent nodes run in parallel. Operations whose state an instance has
// already reached are skipped, so running install again, or resuming it
// after a crash, does only what is left.
func (e *Engine) lifecycle(ctx context.Context, x *Execution, t *Target, uninstall bool) error {
	ops := blueprints.InstallOperations
	if uninstall {
		ops = blueprints.UninstallOperations
	}
	tasks := make([]*Task, 0, len(t.Plan.Nodes))
	deps := map[string][]string{}
	for _, n := range t.Plan.Nodes {
		for _, d := range n.Dependencies() {
			if uninstall {
				deps[d] = append(deps[d], n.Name) // reverse: dependents go first
			} else {
				deps[n.Name] = append(deps[n.Name], d)
			}
		}
	}
	for _, n := range t.Plan.Nodes {
		n := n
		tasks = append(tasks, &Task{
			ID:   n.Name,
			Deps: deps[n.Name],
			Run: func(ctx context.Context) error {
				for _, op := range ops {
					if err := e.nodeOperation(ctx, x, t, n, op, uninstall); err != nil {
						return err
					}
				}
				return nil
			},
		})
	}
	return RunGraph(ctx, tasks, e.Parallel)
}

// nodeOperation runs one lifecycle operation of a node (if it has one) and
// advances the instance's state.
func (e *Engine) nodeOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, opName string, uninstall bool) error {
	inst := t.Instances[n.Name]
	if inst == nil {
		return fmt.Errorf("node %s has no instance in deployment %s", n.Name, t.Deployment)
	}
	target := stateAfter[opName]
	cur := inst.State
	if !uninstall && (cur == StateStopped || cur == StateDeleted) {
		cur = StateUninitialized // installing again after an uninstall
	}
	if uninstall && cur == StateUninitialized {
		return nil // never created: nothing to undo
	}
	if stateRank[cur] >= stateRank[target] {
		if op := n.Operations[opName]; op != nil && x.Resumes > 0 {
			e.emit(x, "info", EventOperationSkipped, n.Name, opName, fmt.Sprintf("%s.%s already done", n.Name, opName))
		}
		return nil
	}
	op := n.Operations[opName]
	if op != nil {
		if x.DryRun {
			e.emit(x, "info", EventOperationSkipped, n.Name, opName,
				fmt.Sprintf("would run %s.%s (%s, timeout %s, up to %d retries)", n.Name, opName, op.Implementation, op.Timeout, op.MaxRetries))
			return nil
		}
		if err := e.runOperation(ctx, x, t, n, inst, op); err != nil {
			return err
		}
	} else if x.DryRun {
		return nil
	}
	inst.State = target
	if err := e.store.PutInstance(ctx, t.Deployment, inst); err != nil {
		return fmt.Errorf("store state of %s: %w", inst.ID, err)
	}
	return nil
}

// runOperation runs op with its timeout, retrying recoverable errors with
// exponential backoff.
func (e *Engine) runOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, op *blueprints.PlanOperation) error {
	impl, ok := e.registry.Operation(op.Implementation)
	if !ok {
		return fmt.Errorf("%s.%s: no plugin provides operation implementation %q", n.Name, op.Name, op.Implementation)
	}
	// What is sensitive in the node's properties and the operation's
	// inputs never reaches an event or an error, whatever the plugin prints.
	scrub := newScrubber(n.Properties, op.Inputs)
	backoff := op.RetryInterval
	for attempt := 1; ; attempt++ {
		runtime := copyMap(inst.Runtime)
		oc := &plugins.OperationContext{
			Deployment: t.Deployment,
			Node:       n.Name,
			Instance:   inst.ID,
			Types:      n.Types,
			Operation:  op.Name,
			Attempt:    attempt,
			Dir:        t.Dir,
			Properties: blueprints.GoMap(n.Properties, false),
			Inputs:     blueprints.GoMap(op.Inputs, false),
			Runtime:    runtime,
			Related:    related(t, n),
			Log: func(level, msg string) {
				e.emit(x, level, EventLog, n.Name, op.Name, scrub.text(msg))
			},
		}
		e.emit(x, "info", EventOperationStarted, n.Name, op.Name, fmt.Sprintf("%s.%s started (%s, attempt %d)", n.Name, op.Name, op.Implementation, attempt))
		start := time.Now()
		opCtx, cancel := context.WithTimeout(ctx, op.Timeout)
		err := scrub.err(runSafely(opCtx, impl, oc))
		timedOut := errors.Is(opCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err == nil && !timedOut {
			inst.Runtime = runtime
			e.emit(x, "info", EventOperationSucceeded, n.Name, op.Name, fmt.Sprintf("%s.%s succeeded in %s", n.Name, op.Name, time.Since(start).Round(time.Millisecond)))
			return nil
		}
		if ctx.Err() != nil {
			e.emit(x, "warning", EventOperationFailed, n.Name, op.Name, fmt.Sprintf("%s.%s interrupted: execution cancelled", n.Name, op.Name))
			return ctx.Err()
		}
		if timedOut {
			err = fmt.Errorf("%s.%s timed out after %s", n.Name, op.Name, op.Timeout)
		}
		recoverable, after := plugins.IsRecoverable(err)
		if !recoverable || attempt > op.MaxRetries {
			if recoverable {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			e.emit(x, "error", EventOperationFailed, n.Name, op.Name, err.Error())
			return err
		}
		wait := backoff
		if after > 0 {
			wait = after
		}
		e.emit(x, "warning", EventOperationRetrying, n.Name, op.Name,
			fmt.Sprintf("%s.%s failed with a recoverable error, retry %d of %d in %s: %v", n.Name, op.Name, attempt, op.MaxRetries, wait, err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff *= 2
		if backoff > MaxBackoff {
			backoff = MaxBackoff
		}
	}
}

// runSafely runs a plugin operation, turning a panic into an error so one
// bad plugin cannot take orch down.
func runSafely(ctx context.Context, impl plugins.Operation, oc *plugins.OperationContext) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s.%s: plugin panicked: %v", oc.Node, oc.Operation, r)
		}
	}()
	return impl.Run(ctx, oc)
}

// related lists the nodes n has relationships to, with their properties.
func related(t *Target, n *blueprints.PlanNode) []plugins.RelatedNode {
	var out []plugins.RelatedNode
	for _, r := range n.Relationships {
		for _, other := range t.Plan.Nodes {
			if other.Name == r.Target {
				out = append(out, plugins.RelatedNode{Kind: r.Kind, Name: other.Name, Types: other.Types, Properties: blueprints.GoMap(other.Properties, false)})
			}
		}
	}
	return out
}

// scrubber replaces the sensitive texts of an operation or workflow with
// "(sensitive)" in what it prints and returns.
type scrubber struct{ r *strings.Replacer }

func newScrubber(vs ...cty.Value) scrubber {
	secrets := blueprints.SensitiveStrings(vs...)
	if len(secrets) == 0 {
		return scrubber{}
	}
	// Longest first, so a secret containing another is replaced whole.
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	pairs := make([]string, 0, 2*len(secrets))
	for _, s := range secrets {
		pairs = append(pairs, s, blueprints.Redacted)
	}
	return scrubber{strings.NewReplacer(pairs...)}
}

func (s scrubber) text(msg string) string {
	if s.r == nil {
		return msg
	}
	return s.r.Replace(msg)
}

// err scrubs an error's text; errors.Is and As still see what it wraps
// (a recoverable error stays recoverable).
func (s scrubber) err(err error) error {
	if err == nil || s.r == nil {
		return err
	}
	return &scrubbedError{err: err, msg: s.r.Replace(err.Error())}
}

type scrubbedError struct {
	err error
	msg string
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
