package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
	"github.com/orchhq/orch/plugins"
)

// install converges instances to started, a node after the nodes it
// relates to, with the relationship operations of every pair: create,
// preconfigure, configure, postconfigure, start, establish. scope names the
// instances to install (nil: all); an instance outside it only runs the
// relationship operations still to do for its links (an existing app
// establishing with a database instance a scale added). Independent
// instances run in parallel. Operations done are skipped, so running
// install again, or resuming it after a crash, does only what is left.
func (e *Engine) install(ctx context.Context, x *Execution, t *Target, scope map[string]bool) error {
	t.mu.Lock()
	changed := t.syncLinks()
	insts := t.sorted()
	t.mu.Unlock()
	if err := e.putInstances(ctx, t, changed); err != nil {
		return err
	}
	tasks := make([]*Task, 0, len(insts))
	for _, inst := range insts {
		inst := inst
		full := scope == nil || scope[inst.ID]
		tasks = append(tasks, &Task{
			ID:   inst.ID,
			Deps: linkTargets(t, inst),
			Run: func(ctx context.Context) error {
				return e.installInstance(ctx, x, t, inst, full)
			},
		})
	}
	return RunGraph(ctx, tasks, e.Parallel)
}

// instanceGraph lists the instances and what each waits for: the
// instances it links to, or (reverse, to undo) those linking to it.
func instanceGraph(t *Target, reverse bool) ([]*NodeInstance, map[string][]string) {
	t.mu.Lock()
	insts := t.sorted()
	t.mu.Unlock()
	deps := map[string][]string{}
	for _, inst := range insts {
		for _, target := range linkTargets(t, inst) {
			if reverse {
				deps[target] = append(deps[target], inst.ID)
			} else {
				deps[inst.ID] = append(deps[inst.ID], target)
			}
		}
	}
	return insts, deps
}

// linkTargets are the instances inst links to (each once).
func linkTargets(t *Target, inst *NodeInstance) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, l := range inst.Links {
		if t.Instances[l.Target] != nil && !slices.Contains(out, l.Target) {
			out = append(out, l.Target)
		}
	}
	return out
}

func (e *Engine) installInstance(ctx context.Context, x *Execution, t *Target, inst *NodeInstance, full bool) error {
	n := t.Node(inst.Node)
	if n == nil {
		return fmt.Errorf("instance %s: its node %s is not in the blueprint", inst.ID, inst.Node)
	}
	dirty := false
	for _, step := range []struct{ node, link string }{
		{"create", blueprints.Preconfigure}, {"configure", blueprints.Postconfigure}, {"start", blueprints.Establish},
	} {
		if full {
			if err := e.nodeOperation(ctx, x, t, n, inst, step.node, false); err != nil {
				return err
			}
		}
		d, err := e.linkOperations(ctx, x, t, n, inst, step.link)
		if err != nil {
			return err
		}
		dirty = dirty || d
	}
	if dirty {
		// Links marked done with no operation to run: stored once (the
		// lifecycle writes between may have stored them already).
		return e.putInstance(ctx, t, inst)
	}
	return nil
}

// uninstall stops and deletes the instances of remove (nil: all), in
// reverse order, each after unlinking its relationships; an instance
// outside remove unlinks only its links to instances in it.
func (e *Engine) uninstall(ctx context.Context, x *Execution, t *Target, remove map[string]bool) error {
	insts, deps := instanceGraph(t, true)
	tasks := make([]*Task, 0, len(insts))
	for _, inst := range insts {
		inst := inst
		whole := remove == nil || remove[inst.ID]
		tasks = append(tasks, &Task{
			ID:   inst.ID,
			Deps: deps[inst.ID],
			Run: func(ctx context.Context) error {
				n := t.Node(inst.Node)
				if n == nil {
					return fmt.Errorf("instance %s: its node %s is not in the blueprint", inst.ID, inst.Node)
				}
				if err := e.unlink(ctx, x, t, n, inst, func(target string) bool { return whole || remove[target] }); err != nil {
					return err
				}
				if !whole {
					return nil
				}
				for _, op := range blueprints.UninstallOperations {
					if err := e.nodeOperation(ctx, x, t, n, inst, op, true); err != nil {
						return err
					}
				}
				return nil
			},
		})
	}
	return RunGraph(ctx, tasks, e.Parallel)
}

// linkOperations runs one relationship operation (preconfigure,
// postconfigure, establish) for every link of inst not done yet: the
// source side's, then the target side's. A pair whose operation ran is
// stored at once (a resumed run skips it); links whose relationship has no
// such operation are only marked done, and dirty says some are not stored
// yet (the caller stores the instance later).
func (e *Engine) linkOperations(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, op string) (dirty bool, err error) {
	t.mu.Lock()
	links := slices.Clone(inst.Links)
	t.mu.Unlock()
	unwritten := false
	for _, l := range links {
		if l.done(op) || l.Rel >= len(n.Links) {
			continue
		}
		target := t.instance(l.Target)
		if target == nil {
			continue
		}
		ran := hasLinkOperation(n.Links[l.Rel], op)
		if ran {
			if err := e.linkOperation(ctx, x, t, n, inst, target, l, op); err != nil {
				return false, err
			}
		}
		if x.DryRun {
			continue
		}
		t.mu.Lock()
		l.Done = append(slices.Clone(l.Done), op)
		t.mu.Unlock()
		unwritten = true
		if ran {
			if err := e.putInstance(ctx, t, inst); err != nil {
				return false, err
			}
			unwritten = false
		}
	}
	return unwritten, nil
}

func hasLinkOperation(rel *blueprints.PlanRelationship, op string) bool {
	return rel.Operations[blueprints.SourceSide+"."+op] != nil || rel.Operations[blueprints.TargetSide+"."+op] != nil
}

// unlink runs unlink for the established links of inst whose target
// matches, and forgets what was done for them (a later install does it
// again).
func (e *Engine) unlink(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, match func(target string) bool) error {
	return e.unlinkMatching(ctx, x, t, n, inst, func(l *Link) bool { return match(l.Target) })
}

// unlinkMatching is unlink for the links match picks.
func (e *Engine) unlinkMatching(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, match func(l *Link) bool) error {
	t.mu.Lock()
	links := slices.Clone(inst.Links)
	t.mu.Unlock()
	unwritten := false
	for _, l := range links {
		if !match(l) || len(l.Done) == 0 {
			continue
		}
		ran := false
		if target := t.instance(l.Target); target != nil && l.done(blueprints.Establish) && l.Rel < len(n.Links) && hasLinkOperation(n.Links[l.Rel], blueprints.Unlink) {
			if err := e.linkOperation(ctx, x, t, n, inst, target, l, blueprints.Unlink); err != nil {
				return err
			}
			ran = true
		}
		if x.DryRun {
			continue
		}
		t.mu.Lock()
		l.Done = nil
		t.mu.Unlock()
		unwritten = true
		if ran {
			if err := e.putInstance(ctx, t, inst); err != nil {
				return err
			}
			unwritten = false
		}
	}
	if unwritten {
		return e.putInstance(ctx, t, inst)
	}
	return nil
}

// linkOperation runs a relationship operation of one pair on both sides
// that have it, source first.
func (e *Engine) linkOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, source, target *NodeInstance, l *Link, op string) error {
	rel := n.Links[l.Rel]
	for _, side := range []string{blueprints.SourceSide, blueprints.TargetSide} {
		po := rel.Operations[side+"."+op]
		if po == nil {
			continue
		}
		on, onNode := source, n
		if side == blueprints.TargetSide {
			on, onNode = target, t.Node(target.Node)
		}
		info := &plugins.RelationshipInfo{Type: rel.Type, Side: side, SourceNode: source.Node, SourceInstance: source.ID, TargetNode: target.Node, TargetInstance: target.ID}
		name := fmt.Sprintf("%s.%s(%s->%s)", side, op, source.ID, target.ID)
		if x.DryRun {
			e.emitInst(x, "info", EventOperationSkipped, on, name, fmt.Sprintf("would run %s %s (%s)", rel.Type, name, po.Implementation))
			continue
		}
		t.mu.Lock()
		rs := blueprints.RuntimeScope{Source: values(source), Target: values(target), Attributes: t.attributesOf}
		t.mu.Unlock()
		if err := e.runOperation(ctx, x, t, onNode, on, po, rs, info); err != nil {
			return err
		}
	}
	return nil
}

// values is an instance as expressions read it (call with t.mu held).
func values(inst *NodeInstance) *blueprints.InstanceValues {
	return &blueprints.InstanceValues{ID: inst.ID, Node: inst.Node, Attributes: copyMap(inst.Runtime)}
}

func (t *Target) instance(id string) *NodeInstance {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.Instances[id]
}

// putInstance stores a snapshot of inst.
func (e *Engine) putInstance(ctx context.Context, t *Target, inst *NodeInstance) error {
	t.mu.Lock()
	cp := snapshot(inst)
	t.mu.Unlock()
	if err := e.store.PutInstance(ctx, t.Deployment, cp); err != nil {
		return fmt.Errorf("store state of %s: %w", inst.ID, err)
	}
	return nil
}

func (e *Engine) putInstances(ctx context.Context, t *Target, insts []*NodeInstance) error {
	if len(insts) == 0 {
		return nil
	}
	t.mu.Lock()
	cps := make([]*NodeInstance, len(insts))
	for i, inst := range insts {
		cps[i] = snapshot(inst)
	}
	t.mu.Unlock()
	if err := e.store.PutInstances(ctx, t.Deployment, cps); err != nil {
		return fmt.Errorf("store instances of %s: %w", t.Deployment, err)
	}
	return nil
}

func snapshot(inst *NodeInstance) *NodeInstance {
	cp := *inst
	cp.Runtime = copyMap(inst.Runtime)
	cp.Links = make([]*Link, len(inst.Links))
	for i, l := range inst.Links {
		lc := *l
		lc.Done = slices.Clone(l.Done)
		cp.Links[i] = &lc
	}
	return &cp
}

// nodeOperation runs one lifecycle operation of an instance (if its node
// has one) and advances the instance's state.
func (e *Engine) nodeOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, opName string, uninstall bool) error {
	target := stateAfter[opName]
	t.mu.Lock()
	cur := inst.State
	t.mu.Unlock()
	if !uninstall && (cur == StateStopped || cur == StateDeleted) {
		cur = StateUninitialized // installing again after an uninstall
	}
	if uninstall && cur == StateUninitialized {
		return nil // never created: nothing to undo
	}
	if stateRank[cur] >= stateRank[target] {
		if op := n.Operations[opName]; op != nil && x.Resumes > 0 {
			e.emitInst(x, "info", EventOperationSkipped, inst, opName, fmt.Sprintf("%s.%s already done", inst.ID, opName))
		}
		return nil
	}
	if err := e.runNodeOperation(ctx, x, t, n, inst, opName); err != nil {
		return err
	}
	if x.DryRun {
		return nil
	}
	t.mu.Lock()
	inst.State = target
	t.mu.Unlock()
	return e.putInstance(ctx, t, inst)
}

// runNodeOperation runs a node operation of an instance, if its node has
// it (a dry run only says it would).
func (e *Engine) runNodeOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, opName string) error {
	op := n.Operations[opName]
	if op == nil {
		return nil
	}
	if x.DryRun {
		e.emitInst(x, "info", EventOperationSkipped, inst, opName,
			fmt.Sprintf("would run %s.%s (%s, timeout %s, up to %d retries)", inst.ID, opName, op.Implementation, op.Timeout, op.MaxRetries))
		return nil
	}
	t.mu.Lock()
	rs := blueprints.RuntimeScope{Self: values(inst), Attributes: t.attributesOf}
	t.mu.Unlock()
	return e.runOperation(ctx, x, t, n, inst, op, rs, nil)
}

// runOperation runs op on inst with its timeout, retrying recoverable
// errors with exponential backoff. Its inputs are evaluated now, with the
// runtime attributes as they are (rs); the runtime properties it publishes
// are the instance's when it succeeds.
func (e *Engine) runOperation(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, op *blueprints.PlanOperation, rs blueprints.RuntimeScope, rel *plugins.RelationshipInfo) error {
	label := inst.ID + "." + op.Name
	if rel != nil {
		label = fmt.Sprintf("%s.%s %s(%s->%s)", rel.Type, rel.Side, op.Name, rel.SourceInstance, rel.TargetInstance)
	}
	impl, ok := e.registry.Operation(op.Implementation)
	if !ok {
		return fmt.Errorf("%s: no plugin provides operation implementation %q", label, op.Implementation)
	}
	inputs, err := t.Plan.OperationInputs(op, rs)
	if err != nil {
		err = fmt.Errorf("%s: %w", label, err)
		e.emitInst(x, "error", EventOperationFailed, inst, op.Name, err.Error())
		return err
	}
	// What is sensitive in the node's properties and the operation's
	// inputs never reaches an event or an error, whatever the plugin prints.
	scrub := newScrubber(n.Properties, inputs)
	backoff := op.RetryInterval
	for attempt := 1; ; attempt++ {
		t.mu.Lock()
		runtime := copyMap(inst.Runtime)
		t.mu.Unlock()
		oc := &plugins.OperationContext{
			Deployment:   t.Deployment,
			Execution:    x.ID,
			Node:         n.Name,
			Instance:     inst.ID,
			Types:        n.Types,
			Operation:    op.Name,
			Attempt:      attempt,
			Dir:          t.Dir,
			Properties:   blueprints.GoMap(n.Properties, false),
			Inputs:       blueprints.GoMap(inputs, false),
			Runtime:      runtime,
			Related:      related(t, n),
			Relationship: rel,
			Log: func(level, msg string) {
				e.emitInst(x, level, EventLog, inst, op.Name, scrub.text(msg))
			},
		}
		e.emitInst(x, "info", EventOperationStarted, inst, op.Name, fmt.Sprintf("%s started (%s, attempt %d)", label, op.Implementation, attempt))
		start := time.Now()
		opCtx, cancel := context.WithTimeout(ctx, op.Timeout)
		err := scrub.err(runSafely(opCtx, impl, oc))
		timedOut := errors.Is(opCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
		cancel()
		if err == nil && !timedOut {
			t.mu.Lock()
			inst.Runtime = runtime
			t.mu.Unlock()
			if rel != nil {
				// A relationship operation's published attributes are
				// stored now: the pair's progress is stored after it.
				if err := e.putInstance(ctx, t, inst); err != nil {
					return err
				}
			}
			e.emitInst(x, "info", EventOperationSucceeded, inst, op.Name, fmt.Sprintf("%s succeeded in %s", label, time.Since(start).Round(time.Millisecond)))
			return nil
		}
		if ctx.Err() != nil {
			e.emitInst(x, "warning", EventOperationFailed, inst, op.Name, fmt.Sprintf("%s interrupted: execution cancelled", label))
			return ctx.Err()
		}
		if timedOut {
			err = fmt.Errorf("%s timed out after %s", label, op.Timeout)
		}
		recoverable, after := plugins.IsRecoverable(err)
		if !recoverable || attempt > op.MaxRetries {
			if recoverable {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			e.emitInst(x, "error", EventOperationFailed, inst, op.Name, err.Error())
			return err
		}
		wait := backoff
		if after > 0 {
			wait = after
		}
		e.emitInst(x, "warning", EventOperationRetrying, inst, op.Name,
			fmt.Sprintf("%s failed with a recoverable error, retry %d of %d in %s: %v", label, attempt, op.MaxRetries, wait, err))
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
