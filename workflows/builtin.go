package workflows

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/orchhq/orch/blueprints"
)

// Cloudify's built-in workflows, in every deployment without declaring
// them (a blueprint's own workflow of the same name wins), with Cloudify's
// parameter names.
const (
	Scale            = "scale"
	Heal             = "heal"
	ExecuteOperation = "execute_operation"
	Start            = "start"
	Stop             = "stop"
	Restart          = "restart"
)

// BuiltinWorkflows lists the built-in workflows' names, install first.
var BuiltinWorkflows = []string{Install, Uninstall, Scale, Heal, ExecuteOperation, Start, Stop, Restart}

// builtin reports whether the deployment runs name as a built-in workflow
// (one orch's engine implements, `uses = "orch.NAME"`).
func builtin(t *Target, name string) bool {
	pw := t.Plan.Workflows[name]
	if pw == nil {
		// A plan without the built-in declarations (a test's): install
		// and uninstall still are.
		return name == Install || name == Uninstall
	}
	return strings.HasPrefix(pw.Uses, blueprints.BuiltinWorkflowPrefix)
}

// runBuiltin runs the built-in workflow the deployment's workflow
// workflow is.
func (e *Engine) runBuiltin(ctx context.Context, x *Execution, t *Target, workflow string, params map[string]cty.Value) error {
	name := builtinName(t, workflow)
	switch name {
	case Install:
		return e.install(ctx, x, t, nil)
	case Uninstall:
		return e.uninstall(ctx, x, t, nil)
	case Scale:
		return e.scale(ctx, x, t, params)
	case Heal:
		return e.heal(ctx, x, t, params["node_instance_id"].AsString())
	case ExecuteOperation:
		return e.executeOperation(ctx, x, t, params)
	case Start:
		return e.startStop(ctx, x, t, []string{"start"}, nil)
	case Stop:
		return e.startStop(ctx, x, t, []string{"stop"}, nil)
	case Restart:
		return e.startStop(ctx, x, t, []string{"stop", "start"}, nil)
	}
	return fmt.Errorf("workflow %s: orch has no built-in workflow %q", workflow, name)
}

// builtinName is the built-in workflow a deployment's workflow runs
// ("orch.scale" -> "scale").
func builtinName(t *Target, workflow string) string {
	if pw := t.Plan.Workflows[workflow]; pw != nil {
		return strings.TrimPrefix(pw.Uses, blueprints.BuiltinWorkflowPrefix)
	}
	return workflow
}

// scale adds or removes instances of a node or a group: the change is
// planned (min and max checked: a scale past them changes nothing) and
// stored in the execution first, then carried out; an install that fails
// removes what it added.
func (e *Engine) scale(ctx context.Context, x *Execution, t *Target, params map[string]cty.Value) error {
	if x.Change == nil {
		change, err := planScale(t, params)
		if err != nil {
			return err
		}
		if x.DryRun {
			e.emit(x, "info", EventLog, "", "", fmt.Sprintf("would add %d instance(s) (%s) and remove %d (%s)",
				len(change.Added), strings.Join(ids(change.Added), ", "), len(change.Removed), strings.Join(change.Removed, ", ")))
			return nil
		}
		x.Change = change
		if err := e.store.PutExecution(ctx, x); err != nil {
			return fmt.Errorf("store the scale's plan: %w", err)
		}
	}
	c := x.Change
	// Added instances not stored yet (a crash came between the plan and
	// them) are stored now; those stored are used as they are.
	var fresh []*NodeInstance
	t.mu.Lock()
	for _, inst := range c.Added {
		if t.Instances[inst.ID] == nil {
			cp := snapshot(inst)
			t.Instances[inst.ID] = cp
			fresh = append(fresh, cp)
		}
	}
	t.mu.Unlock()
	if err := e.putInstances(ctx, t, fresh); err != nil {
		return err
	}
	if len(c.Removed) > 0 {
		e.emit(x, "info", EventLog, "", "", fmt.Sprintf("removing %d instance(s): %s", len(c.Removed), strings.Join(c.Removed, ", ")))
		if err := e.removeInstances(ctx, x, t, c.Removed); err != nil {
			return err
		}
	}
	if len(c.Added) == 0 {
		return nil
	}
	e.emit(x, "info", EventLog, "", "", fmt.Sprintf("adding %d instance(s): %s", len(c.Added), strings.Join(ids(c.Added), ", ")))
	added := ids(c.Added)
	err := e.install(ctx, x, t, set(added))
	if err == nil || ctx.Err() != nil {
		return err
	}
	e.emit(x, "warning", EventLog, "", "", fmt.Sprintf("install of the added instances failed; removing them: %v", err))
	if rerr := e.removeInstances(context.WithoutCancel(ctx), x, t, added); rerr != nil {
		return fmt.Errorf("%w; removing the instances it added failed too: %v", err, rerr)
	}
	return fmt.Errorf("scale failed and removed the %d instance(s) it added: %w", len(added), err)
}

// removeInstances uninstalls instances (and unlinks what links to them),
// then deletes their records.
func (e *Engine) removeInstances(ctx context.Context, x *Execution, t *Target, remove []string) error {
	present := make([]string, 0, len(remove))
	t.mu.Lock()
	for _, id := range remove {
		if t.Instances[id] != nil {
			present = append(present, id)
		}
	}
	t.mu.Unlock()
	if len(present) == 0 {
		return nil
	}
	if err := e.uninstall(ctx, x, t, set(present)); err != nil {
		return err
	}
	if err := e.store.DeleteInstances(ctx, t.Deployment, present); err != nil {
		return fmt.Errorf("delete removed instances: %w", err)
	}
	t.mu.Lock()
	for _, id := range present {
		delete(t.Instances, id)
	}
	changed := t.syncLinks()
	t.mu.Unlock()
	return e.putInstances(ctx, t, changed)
}

func ids(insts []*NodeInstance) []string {
	out := make([]string, len(insts))
	for i, inst := range insts {
		out[i] = inst.ID
	}
	return out
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// planScale works out what a scale adds or removes, or why it is refused.
// It changes nothing: the added instances are built on a copy.
func planScale(t *Target, params map[string]cty.Value) (*Change, error) {
	name := params["scalable_entity_name"].AsString()
	bf := params["delta"].AsBigFloat()
	if !bf.IsInt() {
		return nil, fmt.Errorf("delta must be a whole number, not %s", bf.Text('g', -1))
	}
	d64, _ := bf.Int64()
	delta := int(d64)
	compute := params["scale_compute"].True()
	t.mu.Lock()
	defer t.mu.Unlock()
	work := &Target{Plan: t.Plan, Instances: maps.Clone(t.Instances)}
	var group *blueprints.PlanGroup
	for _, g := range t.Plan.Groups {
		if g.Name == name {
			group = g
		}
	}
	n := t.Node(name)
	if group == nil && n == nil {
		var names []string
		for _, pn := range t.Plan.Nodes {
			names = append(names, pn.Name)
		}
		for _, g := range t.Plan.Groups {
			names = append(names, g.Name)
		}
		return nil, fmt.Errorf("scale: deployment %s has no node or group %q (it has: %s)", t.Deployment, name, strings.Join(names, ", "))
	}
	if n != nil && compute && n.Host != "" {
		for n.Host != "" {
			n = t.Node(n.Host)
		}
	}
	if n != nil && n.Group != "" {
		return nil, fmt.Errorf("scale: node %s scales with its group %s: scale the group", n.Name, n.Group)
	}
	if delta == 0 {
		return &Change{}, nil
	}
	change := &Change{}
	if group != nil {
		units := map[string][]string{} // group instance -> its member roots
		var order []string
		for _, inst := range work.sorted() {
			if i := strings.LastIndex(inst.Group, "_"); i > 0 && inst.Group[:i] == group.Name {
				if units[inst.Group] == nil {
					order = append(order, inst.Group)
				}
				units[inst.Group] = append(units[inst.Group], inst.ID)
			}
		}
		if err := bounds("group "+group.Name, "", len(units), delta, group.Instances); err != nil {
			return nil, err
		}
		for range max(delta, 0) {
			change.Added = append(change.Added, work.addGroupInstance(group)...)
		}
		for i := 0; i < -delta; i++ {
			gid := order[len(order)-1-i]
			for _, root := range units[gid] {
				change.Removed = append(change.Removed, t.subgraph(root)...)
			}
		}
		return change, nil
	}
	// Per host instance (or once for a node without a host).
	hosts := []string{""}
	if n.Host != "" {
		hosts = nil
		for _, h := range t.Of(n.Host) {
			hosts = append(hosts, h.ID)
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("scale: node %s is contained in %s, which has no instances; scale %s first", n.Name, n.Host, n.Host)
	}
	if !n.Instances.Declared {
		return nil, fmt.Errorf("scale: node %s has exactly one instance (it declares no instances block); give it instances { max = N } to scale it", n.Name)
	}
	for _, h := range hosts {
		var here []*NodeInstance
		for _, inst := range t.Of(n.Name) {
			if inst.Host == h {
				here = append(here, inst)
			}
		}
		if err := bounds("node "+n.Name, h, len(here), delta, n.Instances); err != nil {
			return nil, err
		}
		for range max(delta, 0) {
			change.Added = append(change.Added, work.addInstance(n, h, "")...)
		}
		for i := 0; i < -delta; i++ {
			change.Removed = append(change.Removed, t.subgraph(here[len(here)-1-i].ID)...)
		}
	}
	for _, inst := range change.Added {
		inst.Links = nil
	}
	return change, nil
}

// bounds refuses a scale that would leave a count outside [min, max].
func bounds(what, host string, have, delta int, in blueprints.Instances) error {
	want := have + delta
	where := ""
	if host != "" {
		where = " in host " + host
	}
	limit := fmt.Sprintf("min %d, max %d", in.Min, in.Max)
	if in.Max == blueprints.Unbounded {
		limit = fmt.Sprintf("min %d, no max", in.Min)
	}
	if want < in.Min || (in.Max != blueprints.Unbounded && want > in.Max) {
		return fmt.Errorf("scale of %s by %+d refused: it has %d instance(s)%s and would have %d (%s); nothing was changed", what, delta, have, where, want, limit)
	}
	return nil
}

// heal reinstalls the host subgraph of an instance: the outermost host
// instance and everything contained in it are uninstalled (what links to
// them unlinking) and installed again (what links to them establishing
// again). The phase is stored, so a resumed heal does not uninstall again
// what it reinstalled.
func (e *Engine) heal(ctx context.Context, x *Execution, t *Target, id string) error {
	if x.Change == nil {
		inst := t.instance(id)
		if inst == nil {
			return fmt.Errorf("heal: deployment %s has no instance %q", t.Deployment, id)
		}
		t.mu.Lock()
		root := t.rootHost(inst)
		sub := t.subgraph(root.ID)
		t.mu.Unlock()
		if x.DryRun {
			e.emit(x, "info", EventLog, "", "", fmt.Sprintf("would reinstall %s", strings.Join(sub, ", ")))
			return nil
		}
		x.Change = &Change{Healed: sub}
		if err := e.store.PutExecution(ctx, x); err != nil {
			return fmt.Errorf("store the heal's plan: %w", err)
		}
	}
	healed := set(x.Change.Healed)
	if x.Change.Phase == "" {
		e.emit(x, "info", EventLog, "", "", fmt.Sprintf("healing %s: uninstalling", strings.Join(x.Change.Healed, ", ")))
		if err := e.uninstall(ctx, x, t, healed); err != nil {
			return err
		}
		x.Change.Phase = Install
		if err := e.store.PutExecution(ctx, x); err != nil {
			return fmt.Errorf("store the heal's progress: %w", err)
		}
	}
	e.emit(x, "info", EventLog, "", "", fmt.Sprintf("healing %s: installing", strings.Join(x.Change.Healed, ", ")))
	return e.install(ctx, x, t, healed)
}

// executeOperation runs a node operation on the instances the filters
// pick, its inputs overridden by operation_kwargs.
func (e *Engine) executeOperation(ctx context.Context, x *Execution, t *Target, params map[string]cty.Value) error {
	opName := params["operation"].AsString()
	strs := func(name string) []string {
		var out []string
		for _, v := range params[name].AsValueSlice() {
			out = append(out, v.AsString())
		}
		return out
	}
	nodeIDs, instIDs, typeNames := strs("node_ids"), strs("node_instance_ids"), strs("type_names")
	kwargs := params["operation_kwargs"]
	if u, _ := kwargs.Unmark(); !u.IsNull() && !u.Type().IsObjectType() && !u.Type().IsMapType() {
		return fmt.Errorf("operation_kwargs must be an object, such as {\"port\": 8080}")
	}
	for _, id := range nodeIDs {
		if t.Node(id) == nil {
			return fmt.Errorf("execute_operation: deployment %s has no node %q", t.Deployment, id)
		}
	}
	for _, id := range instIDs {
		if t.instance(id) == nil {
			return fmt.Errorf("execute_operation: deployment %s has no instance %q", t.Deployment, id)
		}
	}
	t.mu.Lock()
	all := t.sorted()
	t.mu.Unlock()
	pick := map[string]bool{}
	withOp := 0
	for _, inst := range all {
		n := t.Node(inst.Node)
		if n == nil || (len(nodeIDs) > 0 && !slices.Contains(nodeIDs, n.Name)) || (len(instIDs) > 0 && !slices.Contains(instIDs, inst.ID)) {
			continue
		}
		if len(typeNames) > 0 && !slices.ContainsFunc(typeNames, func(tn string) bool { return slices.Contains(n.Types, tn) }) {
			continue
		}
		pick[inst.ID] = true
		if n.Operations[opName] != nil {
			withOp++
		}
	}
	if withOp == 0 {
		return fmt.Errorf("execute_operation: none of the %d instance(s) picked has an operation %q", len(pick), opName)
	}
	byDeps := params["run_by_dependency_order"].True()
	var tasks []*Task
	for _, inst := range all {
		inst := inst
		if !pick[inst.ID] && !byDeps {
			continue
		}
		var deps []string
		if byDeps {
			deps = linkTargets(t, inst)
		}
		tasks = append(tasks, &Task{ID: inst.ID, Deps: deps, Run: func(ctx context.Context) error {
			n := t.Node(inst.Node)
			op := n.Operations[opName]
			if !pick[inst.ID] || op == nil {
				return nil
			}
			if x.DryRun {
				e.emitInst(x, "info", EventOperationSkipped, inst, opName, fmt.Sprintf("would run %s.%s", inst.ID, opName))
				return nil
			}
			t.mu.Lock()
			rs := blueprints.RuntimeScope{Self: values(inst), Attributes: t.attributesOf}
			t.mu.Unlock()
			inputs, err := t.Plan.OperationInputs(op, rs)
			if err != nil {
				return fmt.Errorf("%s.%s: %w", inst.ID, opName, err)
			}
			if err := e.runOperation(ctx, x, t, n, inst, op.WithInputs(mergeObjects(inputs, kwargs)), rs, nil); err != nil {
				return err
			}
			return e.putInstance(ctx, t, inst)
		}})
	}
	return RunGraph(ctx, tasks, e.Parallel)
}

// mergeObjects is a's attributes with b's over them.
func mergeObjects(a, b cty.Value) cty.Value {
	out := map[string]cty.Value{}
	for _, v := range []cty.Value{a, b} {
		if v == cty.NilVal || v.IsNull() || !v.IsKnown() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
			continue
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out[k.AsString()] = e
		}
	}
	return cty.ObjectVal(out)
}

// startStop runs lifecycle operations (start, or stop) on every instance
// of scope (nil: all) that is installed: start in dependency order, stop
// in reverse.
func (e *Engine) startStop(ctx context.Context, x *Execution, t *Target, ops []string, scope map[string]bool) error {
	for _, op := range ops {
		insts, deps := instanceGraph(t, op == "stop")
		var tasks []*Task
		for _, inst := range insts {
			inst := inst
			tasks = append(tasks, &Task{ID: inst.ID, Deps: deps[inst.ID], Run: func(ctx context.Context) error {
				if scope != nil && !scope[inst.ID] {
					return nil
				}
				t.mu.Lock()
				state := inst.State
				t.mu.Unlock()
				installed := state == StateConfigured || state == StateStarted || state == StateStopped
				if !installed || (op == "stop" && state == StateStopped) || (op == "start" && state == StateStarted && !slices.Contains(ops, "stop")) {
					return nil
				}
				n := t.Node(inst.Node)
				if err := e.runNodeOperation(ctx, x, t, n, inst, op); err != nil {
					return err
				}
				if x.DryRun {
					return nil
				}
				t.mu.Lock()
				inst.State = stateAfter[op]
				t.mu.Unlock()
				return e.putInstance(ctx, t, inst)
			}})
		}
		if err := RunGraph(ctx, tasks, e.Parallel); err != nil {
			return err
		}
	}
	return nil
}
