package workflows

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"

	"github.com/orchhq/orch/blueprints"
)

// This file builds a deployment's instances from its plan: a node's
// instances per instance of its host (or of its group), and each source
// instance's links to the target instances of its relationships.

// InitialInstances are the instances a new deployment starts with: every
// node's default count, per host instance for a contained node, per group
// instance for a group's members.
func InitialInstances(plan *blueprints.Plan) map[string]*NodeInstance {
	t := &Target{Plan: plan, Instances: map[string]*NodeInstance{}}
	for _, g := range plan.Groups {
		for range g.Instances.Default {
			t.addGroupInstance(g)
		}
	}
	for _, n := range plan.Nodes {
		if n.Host == "" && n.Group == "" {
			for range n.Instances.Default {
				t.addInstance(n, "", "")
			}
		}
	}
	t.syncLinks()
	return t.Instances
}

// addGroupInstance adds one instance of group g: its members that no other
// member contains, at their default counts, with what they contain.
func (t *Target) addGroupInstance(g *blueprints.PlanGroup) []*NodeInstance {
	gid := g.Name + "_" + suffix()
	var added []*NodeInstance
	for _, m := range g.Members {
		n := t.Node(m)
		if n == nil || n.Host != "" {
			continue
		}
		for range n.Instances.Default {
			added = append(added, t.addInstance(n, "", gid)...)
		}
	}
	return added
}

// addInstance adds one instance of n in host (an instance id, or ""), and
// the default instances of every node contained in n, recursively. It
// returns them all, n's first.
func (t *Target) addInstance(n *blueprints.PlanNode, host, group string) []*NodeInstance {
	index := 0
	for _, inst := range t.Instances {
		if inst.Node == n.Name && inst.Index >= index {
			index = inst.Index + 1
		}
	}
	var id string
	for id == "" || t.Instances[id] != nil {
		id = n.Name + "_" + suffix()
	}
	inst := &NodeInstance{ID: id, Node: n.Name, State: StateUninitialized, Index: index, Host: host, Group: group}
	t.Instances[id] = inst
	out := []*NodeInstance{inst}
	for _, child := range t.Plan.Nodes {
		if child.Host == n.Name {
			for range child.Instances.Default {
				out = append(out, t.addInstance(child, id, "")...)
			}
		}
	}
	return out
}

func suffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// subgraph is the instance with id and every instance contained in it,
// directly or not.
func (t *Target) subgraph(id string) []string {
	out := []string{id}
	for i := 0; i < len(out); i++ {
		for _, inst := range t.sorted() {
			if inst.Host == out[i] {
				out = append(out, inst.ID)
			}
		}
	}
	return out
}

// sorted lists every instance, by node then creation.
func (t *Target) sorted() []*NodeInstance { return Sorted(t.Instances) }

// Sorted lists instances by node, then creation (as deployments show
// lists them).
func Sorted(instances map[string]*NodeInstance) []*NodeInstance {
	out := make([]*NodeInstance, 0, len(instances))
	for _, inst := range instances {
		out = append(out, inst)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.ID < b.ID
	})
	return out
}

// rootHost is the outermost host of an instance (itself when it has none).
func (t *Target) rootHost(inst *NodeInstance) *NodeInstance {
	for i := 0; inst.Host != "" && i < len(t.Instances); i++ {
		h := t.Instances[inst.Host]
		if h == nil {
			break
		}
		inst = h
	}
	return inst
}

// syncLinks gives every instance the links its node's relationships call
// for now: contained_in to its host, all_to_all to every instance of the
// target node, all_to_one to the oldest. A link kept keeps what was done
// for it; a link to an instance gone is dropped. It returns the instances
// whose links changed.
func (t *Target) syncLinks() []*NodeInstance {
	var changed []*NodeInstance
	byNode := map[string][]*NodeInstance{}
	for _, n := range t.Plan.Nodes {
		byNode[n.Name] = t.Of(n.Name)
	}
	for _, inst := range t.sorted() {
		n := t.Node(inst.Node)
		if n == nil {
			continue
		}
		var want []*Link
		for k, r := range n.Links {
			var targets []string
			switch {
			case r.Kind == blueprints.ContainedIn:
				if inst.Host != "" {
					targets = []string{inst.Host}
				}
			case r.ConnectionType == blueprints.AllToOne:
				if all := byNode[r.Target]; len(all) > 0 {
					targets = []string{all[0].ID}
				}
			default:
				for _, ti := range byNode[r.Target] {
					targets = append(targets, ti.ID)
				}
			}
			for _, tid := range targets {
				l := &Link{Rel: k, Type: r.Type, Target: tid}
				for _, old := range inst.Links {
					if old.Rel == k && old.Target == tid {
						l.Done = old.Done
					}
				}
				want = append(want, l)
			}
		}
		if !sameLinks(inst.Links, want) {
			inst.Links = want
			changed = append(changed, inst)
		}
	}
	return changed
}

func sameLinks(a, b []*Link) bool {
	return slices.EqualFunc(a, b, func(x, y *Link) bool {
		return x.Rel == y.Rel && x.Target == y.Target && x.Type == y.Type && slices.Equal(x.Done, y.Done)
	})
}

// attributesOf returns (a copy of) the runtime attributes of a node's
// (only) instance.
func (t *Target) attributesOf(node string) map[string]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if insts := t.Of(node); len(insts) > 0 {
		return copyMap(insts[0].Runtime)
	}
	return nil
}
