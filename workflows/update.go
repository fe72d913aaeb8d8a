package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/orchhq/orch/blueprints"
)

// A deployment update changes a running deployment to a new blueprint (or
// new inputs) without reinstalling what did not change. It is planned
// first (PlanUpdate: a value, stored in its execution before anything
// acts) and then carried out in phases, each stored when done, so an
// update resumed after a crash goes on where it stopped:
//
//  1. unlink: the links of kept instances whose relationship is gone are
//     unlinked; the instances of removed nodes are uninstalled (what links
//     to them unlinking first) and deleted;
//  2. switch: the deployment takes the new blueprint and inputs, its
//     instances' links renumbered to the new relationships and the added
//     instances stored, in one transaction;
//  3. install: the added instances are installed, and every instance runs
//     the relationship operations of its new links (an existing app
//     establishing with an added cache);
//  4. update: the instances of nodes whose properties changed run their
//     node's `update` operation, if it has one.
//
// Nodes whose type, host or group changed are replaced (removed, then
// added). Unchanged nodes are not touched.

// UpdateWorkflow is the workflow name of an update's execution.
const UpdateWorkflow = "update"

// Update phases, in order.
const (
	PhaseUnlink  = ""
	PhaseSwitch  = "switch"
	PhaseInstall = "install"
	PhaseUpdate  = "update"
)

// UpdateOperation is the node operation an update runs on the instances
// of nodes whose properties changed.
const UpdateOperation = "update"

// Update is a planned deployment update.
type Update struct {
	// Blueprint is the stored blueprint record the deployment takes, with
	// Inputs (as stored: sensitive ones never are); Properties and Outputs
	// are its resolved values for display (redacted).
	Blueprint  string                     `json:"blueprint"`
	Dir        string                     `json:"dir,omitempty"`
	Inputs     map[string]json.RawMessage `json:"inputs,omitempty"`
	Properties map[string]map[string]any  `json:"properties,omitempty"`
	Outputs    map[string]any             `json:"outputs,omitempty"`

	AddedNodes   []string `json:"added_nodes,omitempty"`
	RemovedNodes []string `json:"removed_nodes,omitempty"`
	ChangedNodes []string `json:"changed_nodes,omitempty"` // properties changed
	// Added are the new instances; Removed the instances of removed
	// nodes; Unlink the links of kept instances to unlink (their
	// relationship is gone); Relink maps, per kept node, each of its
	// relationships (by index) to its index in the new node (-1: gone).
	Added   []*NodeInstance  `json:"added,omitempty"`
	Removed []string         `json:"removed,omitempty"`
	Unlink  []LinkRef        `json:"unlink,omitempty"`
	Relink  map[string][]int `json:"relink,omitempty"`
	// Policies added, removed and kept (their state kept), by name.
	AddedPolicies   []string `json:"added_policies,omitempty"`
	RemovedPolicies []string `json:"removed_policies,omitempty"`
	KeptPolicies    []string `json:"kept_policies,omitempty"`
	// Changes describe the update, a line each.
	Changes []string `json:"changes"`
	// Phase is how far it got; Updated the instances whose update
	// operation ran.
	Phase   string   `json:"phase,omitempty"`
	Updated []string `json:"updated,omitempty"`
	// relationships counts the relationships added or removed.
	relationships int
}

// LinkRef is one link of an instance.
type LinkRef struct {
	Instance string `json:"instance"`
	Target   string `json:"target"`
	Rel      int    `json:"rel"`
}

// Empty reports whether the update changes nothing.
func (u *Update) Empty() bool {
	return len(u.AddedNodes)+len(u.RemovedNodes)+len(u.ChangedNodes)+len(u.Unlink)+len(u.Added)+len(u.Removed)+
		len(u.AddedPolicies)+len(u.RemovedPolicies)+u.relationships == 0
}

// relKey names a relationship independently of its position.
func relKey(r *blueprints.PlanRelationship) string { return r.Kind + "|" + r.Type + "|" + r.Target }

// propsText is a node's properties as comparable text.
func propsText(n *blueprints.PlanNode) string {
	b, _ := json.Marshal(blueprints.GoMap(n.Properties, false))
	return string(b)
}

// PlanUpdate works out what updating t to plan does. It changes nothing
// (the added instances are built on a copy).
func PlanUpdate(t *Target, plan *blueprints.Plan) (*Update, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := &Update{Relink: map[string][]int{}}
	oldNodes, newNodes := map[string]*blueprints.PlanNode{}, map[string]*blueprints.PlanNode{}
	for _, n := range t.Plan.Nodes {
		oldNodes[n.Name] = n
	}
	for _, n := range plan.Nodes {
		newNodes[n.Name] = n
	}
	kept := map[string]bool{}
	for _, n := range t.Plan.Nodes {
		nn := newNodes[n.Name]
		switch {
		case nn == nil:
			u.RemovedNodes = append(u.RemovedNodes, n.Name)
			u.Changes = append(u.Changes, fmt.Sprintf("remove node %s (%d instance(s))", n.Name, len(t.Of(n.Name))))
		case nn.Type != n.Type || nn.Host != n.Host || nn.Group != n.Group:
			u.RemovedNodes = append(u.RemovedNodes, n.Name)
			u.AddedNodes = append(u.AddedNodes, n.Name)
			u.Changes = append(u.Changes, fmt.Sprintf("replace node %s (its type, host or group changed)", n.Name))
		default:
			kept[n.Name] = true
			if propsText(n) != propsText(nn) {
				u.ChangedNodes = append(u.ChangedNodes, n.Name)
				how := "its properties change; it keeps running"
				if nn.Operations[UpdateOperation] != nil {
					how = "its properties change; its update operation runs"
				}
				u.Changes = append(u.Changes, fmt.Sprintf("change node %s: %s", n.Name, how))
			}
		}
	}
	for _, n := range plan.Nodes {
		if oldNodes[n.Name] == nil {
			u.AddedNodes = append(u.AddedNodes, n.Name)
			u.Changes = append(u.Changes, fmt.Sprintf("add node %s", n.Name))
		}
	}
	for _, g := range plan.Groups {
		for _, m := range g.Members {
			if kept[m] && slices.ContainsFunc(u.AddedNodes, func(a string) bool { return newNodes[a].Group == g.Name }) {
				return nil, fmt.Errorf("update adds nodes to group %s, which has instances: orch cannot add members to a running group yet (undeploy and deploy, or add a new group)", g.Name)
			}
		}
	}
	// Kept instances: their links renumbered to the new relationships;
	// those whose relationship is gone unlink (unless their target goes).
	removing := map[string]bool{}
	for _, inst := range t.sorted() {
		if !kept[inst.Node] {
			u.Removed = append(u.Removed, inst.ID)
			removing[inst.ID] = true
		}
	}
	work := &Target{Plan: plan, Instances: map[string]*NodeInstance{}}
	for name := range kept {
		on, nn := oldNodes[name], newNodes[name]
		index := map[string]int{}
		for i, r := range nn.Links {
			index[relKey(r)] = i
		}
		m := make([]int, len(on.Links))
		for i, r := range on.Links {
			m[i] = -1
			if to, ok := index[relKey(r)]; ok {
				m[i] = to
			}
		}
		u.Relink[name] = m
	}
	for _, inst := range t.sorted() {
		if !kept[inst.Node] {
			continue
		}
		cp := relinked(inst, u.Relink[inst.Node])
		for _, l := range inst.Links {
			if relinkOf(u.Relink[inst.Node], l.Rel) < 0 && !removing[l.Target] && len(l.Done) > 0 {
				u.Unlink = append(u.Unlink, LinkRef{Instance: inst.ID, Target: l.Target, Rel: l.Rel})
			}
		}
		work.Instances[cp.ID] = cp
	}
	for _, n := range t.Plan.Nodes {
		nn := newNodes[n.Name]
		if !kept[n.Name] || nn == nil {
			continue
		}
		old := map[string]bool{}
		for _, r := range n.Links {
			old[relKey(r)] = true
		}
		for _, r := range nn.Links {
			if !old[relKey(r)] {
				u.Changes = append(u.Changes, fmt.Sprintf("relationship %s -> %s (%s) added", n.Name, r.Target, r.Type))
				u.relationships++
			}
		}
		for _, r := range n.Links {
			if !slices.ContainsFunc(nn.Links, func(x *blueprints.PlanRelationship) bool { return relKey(x) == relKey(r) }) {
				u.Changes = append(u.Changes, fmt.Sprintf("relationship %s -> %s (%s) removed: unlinked", n.Name, r.Target, r.Type))
				u.relationships++
			}
		}
	}
	// Added instances: new groups at their default counts, then the
	// added nodes that no added node contains, in each host instance.
	added := set(u.AddedNodes)
	for _, g := range plan.Groups {
		if slices.ContainsFunc(t.Plan.Groups, func(og *blueprints.PlanGroup) bool { return og.Name == g.Name }) {
			continue
		}
		for range g.Instances.Default {
			work.addGroupInstance(g)
		}
	}
	for _, n := range plan.Nodes {
		if !added[n.Name] || n.Group != "" || n.Host != "" && added[n.Host] {
			continue
		}
		hosts := []string{""}
		if n.Host != "" {
			hosts = nil
			for _, h := range work.Of(n.Host) {
				hosts = append(hosts, h.ID)
			}
		}
		for _, h := range hosts {
			for range n.Instances.Default {
				work.addInstance(n, h, "")
			}
		}
	}
	work.syncLinks()
	for _, inst := range work.sorted() {
		if t.Instances[inst.ID] == nil {
			u.Added = append(u.Added, inst)
		}
	}
	if len(u.Added) > 0 {
		u.Changes = append(u.Changes, fmt.Sprintf("install %d instance(s): %s", len(u.Added), strings.Join(ids(u.Added), ", ")))
	}
	if len(u.Removed) > 0 {
		u.Changes = append(u.Changes, fmt.Sprintf("uninstall %d instance(s), unlinking first: %s", len(u.Removed), strings.Join(u.Removed, ", ")))
	}
	oldPol, newPol := map[string]bool{}, map[string]bool{}
	for _, p := range t.Plan.Policies {
		oldPol[p.Name] = true
	}
	for _, p := range plan.Policies {
		newPol[p.Name] = true
		if oldPol[p.Name] {
			u.KeptPolicies = append(u.KeptPolicies, p.Name)
		} else {
			u.AddedPolicies = append(u.AddedPolicies, p.Name)
			u.Changes = append(u.Changes, fmt.Sprintf("add policy %s (starts with its grace)", p.Name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oldPol)) {
		if !newPol[name] {
			u.RemovedPolicies = append(u.RemovedPolicies, name)
			u.Changes = append(u.Changes, fmt.Sprintf("remove policy %s", name))
		}
	}
	if len(u.KeptPolicies) > 0 {
		u.Changes = append(u.Changes, fmt.Sprintf("keep policies %s with their state (cooldowns, pauses, decision log)", strings.Join(u.KeptPolicies, ", ")))
	}
	return u, nil
}

// Updater is implemented by stores that can switch a deployment to a new
// blueprint (the update's phase 2), in one transaction: the deployment
// record, its instances (every one given; the others deleted).
type Updater interface {
	SwitchDeployment(ctx context.Context, deployment string, u *Update, instances []*NodeInstance) error
}

// runUpdate carries out an update, from the phase it got to.
func (e *Engine) runUpdate(ctx context.Context, x *Execution) error {
	u := x.Update
	store := func(phase string) error {
		u.Phase = phase
		if err := e.store.PutExecution(context.WithoutCancel(ctx), x); err != nil {
			return fmt.Errorf("store the update's progress: %w", err)
		}
		return nil
	}
	if x.DryRun {
		for _, c := range u.Changes {
			e.emit(x, "info", EventLog, "", "", "would "+c)
		}
		return nil
	}
	t, err := e.store.Target(ctx, x.Deployment)
	if err != nil {
		return err
	}
	if u.Phase == PhaseUnlink {
		e.emit(x, "info", EventLog, "", "", fmt.Sprintf("update of %s: %s", x.Deployment, strings.Join(u.Changes, "; ")))
		for _, ref := range u.Unlink {
			inst := t.instance(ref.Instance)
			if inst == nil {
				continue
			}
			n := t.Node(inst.Node)
			if err := e.unlinkOne(ctx, x, t, n, inst, ref); err != nil {
				return err
			}
		}
		if len(u.Removed) > 0 {
			if err := e.removeInstances(ctx, x, t, u.Removed); err != nil {
				return err
			}
		}
		if err := store(PhaseSwitch); err != nil {
			return err
		}
	}
	if u.Phase == PhaseSwitch {
		up, ok := e.store.(Updater)
		if !ok {
			return fmt.Errorf("update: the state store cannot switch a deployment's blueprint")
		}
		t.mu.Lock()
		var insts []*NodeInstance
		for _, inst := range t.sorted() {
			if slices.Contains(u.Removed, inst.ID) {
				continue
			}
			insts = append(insts, relinked(inst, u.Relink[inst.Node]))
		}
		t.mu.Unlock()
		for _, a := range u.Added {
			if !slices.ContainsFunc(insts, func(i *NodeInstance) bool { return i.ID == a.ID }) {
				insts = append(insts, snapshot(a))
			}
		}
		if err := up.SwitchDeployment(ctx, x.Deployment, u, insts); err != nil {
			return fmt.Errorf("update: switch to the new blueprint: %w", err)
		}
		e.emit(x, "info", EventLog, "", "", "the deployment now runs the new blueprint")
		if err := store(PhaseInstall); err != nil {
			return err
		}
	}
	if t, err = e.store.Target(ctx, x.Deployment); err != nil {
		return err
	}
	if u.Phase == PhaseInstall {
		if err := e.install(ctx, x, t, set(ids(u.Added))); err != nil {
			return err
		}
		if err := store(PhaseUpdate); err != nil {
			return err
		}
	}
	for _, node := range u.ChangedNodes {
		n := t.Node(node)
		if n == nil || n.Operations[UpdateOperation] == nil {
			continue
		}
		t.mu.Lock()
		insts := t.Of(node)
		t.mu.Unlock()
		for _, inst := range insts {
			if slices.Contains(u.Updated, inst.ID) {
				continue
			}
			if err := e.runNodeOperation(ctx, x, t, n, inst, UpdateOperation); err != nil {
				return err
			}
			if err := e.putInstance(ctx, t, inst); err != nil {
				return err
			}
			u.Updated = append(u.Updated, inst.ID)
			if err := store(PhaseUpdate); err != nil {
				return err
			}
		}
	}
	e.updateOutputs(context.WithoutCancel(ctx), x, t)
	return nil
}

// relinkOf is the new index of relationship rel (-1: gone).
func relinkOf(m []int, rel int) int {
	if rel < 0 || rel >= len(m) {
		return -1
	}
	return m[rel]
}

// relinked is a copy of inst with its links renumbered by m (the links of
// relationships gone dropped).
func relinked(inst *NodeInstance, m []int) *NodeInstance {
	cp := snapshot(inst)
	cp.Links = nil
	for _, l := range inst.Links {
		if to := relinkOf(m, l.Rel); to >= 0 {
			lc := *l
			lc.Done = slices.Clone(l.Done)
			lc.Rel = to
			cp.Links = append(cp.Links, &lc)
		}
	}
	return cp
}

// unlinkOne unlinks one link of inst (its relationship is gone from the
// new blueprint): its unlink operations run, and the link is dropped.
func (e *Engine) unlinkOne(ctx context.Context, x *Execution, t *Target, n *blueprints.PlanNode, inst *NodeInstance, ref LinkRef) error {
	return e.unlinkMatching(ctx, x, t, n, inst, func(l *Link) bool { return l.Target == ref.Target && l.Rel == ref.Rel })
}
