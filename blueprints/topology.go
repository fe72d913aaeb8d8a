package blueprints

import (
	"fmt"
	"math/big"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// This file decodes the blocks of the topology beside nodes: instances,
// relationship blocks, relationship types and scaling groups.

var instancesSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "default"}, {Name: "min"}, {Name: "max"},
}}

// decodeInstancesBlock reads `instances { default = 2, min = 1, max = 10 }`:
// default 1, min 0, no max unless given (Cloudify's defaults).
func decodeInstancesBlock(block *hcl.Block) (Instances, hcl.Diagnostics) {
	in := Instances{Default: 1, Min: 0, Max: Unbounded, Declared: true, DeclRange: block.DefRange}
	content, diags := block.Body.Content(instancesSchema)
	for name, target := range map[string]*int{"default": &in.Default, "min": &in.Min, "max": &in.Max} {
		if attr, ok := content.Attributes[name]; ok {
			diags = append(diags, decodeCount(attr, target)...)
		}
	}
	if diags.HasErrors() {
		return in, diags
	}
	rangeOf := func(name string) hcl.Range {
		if a, ok := content.Attributes[name]; ok {
			return a.Expr.Range()
		}
		return block.DefRange
	}
	switch {
	case in.Max != Unbounded && in.Max < 1:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid max",
			Detail: "max must be at least 1.", Subject: rangeOf("max").Ptr()})
	case in.Max != Unbounded && in.Min > in.Max:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "min is above max",
			Detail: fmt.Sprintf("min (%d) must not be above max (%d).", in.Min, in.Max), Subject: rangeOf("min").Ptr()})
	case in.Default < in.Min || (in.Max != Unbounded && in.Default > in.Max):
		bounds := fmt.Sprintf("[%d, %d]", in.Min, in.Max)
		if in.Max == Unbounded {
			bounds = fmt.Sprintf("%d or more", in.Min)
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "default is outside min and max",
			Detail: fmt.Sprintf("default (%d) must be %s.", in.Default, bounds), Subject: rangeOf("default").Ptr()})
	}
	return in, diags
}

// decodeCount reads a whole number, 0 or more.
func decodeCount(attr *hcl.Attribute, target *int) hcl.Diagnostics {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	bad := hcl.Diagnostics{attrError(attr, fmt.Sprintf("Invalid %s", attr.Name), fmt.Sprintf("%s must be a whole number, 0 or more.", attr.Name))}
	cv, err := convert.Convert(v, cty.Number)
	if err != nil || cv.IsNull() || !cv.IsKnown() || !cv.AsBigFloat().IsInt() {
		return bad
	}
	n, acc := cv.AsBigFloat().Int64()
	if acc != big.Exact || n < 0 || n > 1_000_000 {
		return bad
	}
	*target = int(n)
	return nil
}

var relationshipSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type"}, {Name: "target", Required: true}, {Name: "connection_type"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "operation", LabelNames: []string{"name"}}},
}

// decodeRelationshipBlock reads a node's `relationship { type, target,
// connection_type, operation "NAME" { side = ... } }`.
func decodeRelationshipBlock(block *hcl.Block) (*Relationship, hcl.Diagnostics) {
	content, diags := block.Body.Content(relationshipSchema)
	r := &Relationship{Type: ConnectedToType, TypeRange: block.DefRange}
	if attr, ok := content.Attributes["type"]; ok {
		diags = append(diags, decodeStaticString(attr, &r.Type)...)
		r.TypeRange = attr.Expr.Range()
	}
	if attr, ok := content.Attributes["target"]; ok {
		name, rng, d := decodeRef(attr.Expr, "node")
		diags = append(diags, d...)
		r.Target, r.Range = name, rng
	}
	if attr, ok := content.Attributes["connection_type"]; ok {
		diags = append(diags, decodeStaticString(attr, &r.ConnectionType)...)
		r.ConnectionTypeRange = attr.Expr.Range()
		if r.ConnectionType != AllToAll && r.ConnectionType != AllToOne && !diags.HasErrors() {
			diags = append(diags, attrError(attr, "Invalid connection_type",
				fmt.Sprintf("connection_type is %q or %q, not %q.%s", AllToAll, AllToOne, r.ConnectionType, suggestion(r.ConnectionType, []string{AllToAll, AllToOne}))))
		}
	}
	ops, d := decodeRelationshipOperations(content.Blocks)
	r.Operations = ops
	diags = append(diags, d...)
	if r.Target == "" {
		return nil, diags
	}
	return r, diags
}

var relationshipTypeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "derived_from"}, {Name: "description"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "operation", LabelNames: []string{"name"}}},
}

func decodeRelationshipTypeBlock(block *hcl.Block) (*RelationshipType, hcl.Diagnostics) {
	diags := checkTypeName(block, "relationship type")
	rt := &RelationshipType{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(relationshipTypeSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["derived_from"]; ok {
		diags = append(diags, decodeStaticString(attr, &rt.DerivedFrom)...)
		rt.DerivedRange = attr.Expr.Range()
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &rt.Description)...)
	ops, d := decodeRelationshipOperations(content.Blocks)
	rt.Operations = ops
	return rt, append(diags, d...)
}

// decodeRelationshipOperations reads `operation "NAME" { side = ... }`
// blocks: NAME one of the relationship operations, side "source" (the
// default) or "target", each pair at most once.
func decodeRelationshipOperations(blocks hcl.Blocks) ([]*Operation, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var ops []*Operation
	seen := map[string]hcl.Range{}
	for _, b := range blocks {
		if b.Type != "operation" {
			continue
		}
		body, rest, d := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "side"}}})
		diags = append(diags, d...)
		side := SourceSide
		if attr, ok := body.Attributes["side"]; ok {
			diags = append(diags, decodeStaticString(attr, &side)...)
			if side != SourceSide && side != TargetSide {
				diags = append(diags, attrError(attr, "Invalid side",
					fmt.Sprintf("A relationship operation runs on the %q or the %q side, not %q.%s", SourceSide, TargetSide, side, suggestion(side, []string{SourceSide, TargetSide}))))
				continue
			}
		}
		name := b.Labels[0]
		if !slices.Contains(RelationshipOperationNames, name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown relationship operation",
				Detail:  fmt.Sprintf("A relationship has the operations %s, not %q.%s", joinQuoted(RelationshipOperationNames), name, suggestion(name, RelationshipOperationNames)),
				Subject: &b.LabelRanges[0]})
			continue
		}
		key := side + "." + name
		if prev, dup := seen[key]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate operation %q", name),
				Detail: fmt.Sprintf("The %s side's %s was already declared at %s.", side, name, prev), Subject: &b.LabelRanges[0]})
			continue
		}
		seen[key] = b.DefRange
		op, d := decodeOperationBody(&hcl.Block{Type: b.Type, Labels: b.Labels, Body: rest, DefRange: b.DefRange, TypeRange: b.TypeRange, LabelRanges: b.LabelRanges})
		diags = append(diags, d...)
		op.Side = side
		ops = append(ops, op)
	}
	return ops, diags
}

func joinQuoted(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ", "
		}
		out += fmt.Sprintf("%q", n)
	}
	return out
}

var groupSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "members", Required: true}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "instances"}},
}

func decodeGroupBlock(block *hcl.Block) (*Group, hcl.Diagnostics) {
	diags := checkName(block, "group")
	g := &Group{Name: block.Labels[0], Instances: Instances{Default: 1, Min: 0, Max: Unbounded, Declared: true, DeclRange: block.DefRange}, DeclRange: block.DefRange}
	content, d := block.Body.Content(groupSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["members"]; ok {
		refs, d := decodeRefList(attr.Expr, "node")
		diags = append(diags, d...)
		for _, r := range refs {
			g.Members = append(g.Members, r.name)
			g.MemberRanges = append(g.MemberRanges, r.rng)
		}
		if len(refs) == 0 && !d.HasErrors() {
			diags = append(diags, attrError(attr, "Empty group", fmt.Sprintf("Group %q needs at least one member.", g.Name)))
		}
	}
	diags = append(diags, decodeInstances(content.Blocks, fmt.Sprintf("Group %q", g.Name), &g.Instances)...)
	return g, diags
}

// decodeInstances decodes the instances block among blocks into in (left
// as it is when there is none); a second one is an error.
func decodeInstances(blocks hcl.Blocks, owner string, in *Instances) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := false
	for _, b := range blocks {
		if b.Type != "instances" {
			continue
		}
		if seen {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate instances block",
				Detail: fmt.Sprintf("%s has more than one instances block.", owner), Subject: b.DefRange.Ptr()})
			continue
		}
		seen = true
		decoded, d := decodeInstancesBlock(b)
		diags = append(diags, d...)
		*in = decoded
	}
	return diags
}
