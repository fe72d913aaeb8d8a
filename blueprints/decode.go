package blueprints

import (
	"fmt"
	"io"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

const badIdentifierDetail = "A name must start with a letter or underscore and may contain only letters, digits, underscores, and dashes."

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "imports"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "input", LabelNames: []string{"name"}},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "node_type", LabelNames: []string{"name"}},
		{Type: "node", LabelNames: []string{"name"}},
		{Type: "relationship_type", LabelNames: []string{"name"}},
		{Type: "group", LabelNames: []string{"name"}},
		{Type: "workflow", LabelNames: []string{"name"}},
		{Type: "policy_type", LabelNames: []string{"name"}},
		{Type: "policy", LabelNames: []string{"name"}},
		{Type: "source", LabelNames: []string{"name"}},
	},
}

// Loader reads blueprint files. ReadFile defaults to os.ReadFile; a stored
// blueprint is re-read by giving a ReadFile over its stored sources.
type Loader struct {
	ReadFile func(path string) ([]byte, error)
	// Builtin are type files shipped by orch and its plugins (node_type and
	// policy_type blocks only), keyed by a display name.
	Builtin map[string][]byte
	// Root, when set, confines every file read (named and imported) to
	// that directory tree, symlinks resolved: orch serve sets it for a
	// blueprint an API client names, so the API reads no other file.
	Root string
}

// blueprintExtensions are the names a blueprint file read from disk may
// end with.
var blueprintExtensions = []string{".hcl", ".json"}

// checkPath refuses a path that is not a blueprint file's, or outside the
// loader's root.
func (l *Loader) checkPath(path string) error {
	if !slices.ContainsFunc(blueprintExtensions, func(ext string) bool { return strings.HasSuffix(path, ext) }) {
		return fmt.Errorf("%s is not a blueprint file: its name must end with .hcl (or .json)", path)
	}
	if l.Root == "" {
		return nil
	}
	return Within(l.Root, path)
}

// Within refuses a path that is not inside root's directory tree (after
// symlinks, so a link out of it does not count as inside).
func Within(root, path string) error {
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("blueprint directory %s: %w", root, err)
	}
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	if rel, err := filepath.Rel(r, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return fmt.Errorf("%s is outside the blueprint's directory %s; orch serve reads only files within it", path, root)
	}
	return nil
}

// Load parses the named files and everything they import into one Blueprint.
// It decodes only; call Validate (or Resolve) for the semantic checks.
func (l *Loader) Load(paths ...string) (*Blueprint, hcl.Diagnostics) {
	read := l.ReadFile
	if read == nil {
		read = ReadBlueprintFile
	}
	bp := &Blueprint{Sources: map[string][]byte{}, Files: map[string]*hcl.File{}}
	parser := hclparse.NewParser()
	var diags hcl.Diagnostics

	for _, name := range slices.Sorted(maps.Keys(l.Builtin)) {
		f, d := parser.ParseHCL(l.Builtin[name], name)
		diags = append(diags, d...)
		if f != nil {
			bp.Files[name] = f
			diags = append(diags, decodeFile(bp, f, true)...)
		}
	}

	type pending struct {
		path string
		from *hcl.Range
	}
	queue := make([]pending, 0, len(paths))
	for _, p := range paths {
		p = filepath.Clean(p)
		bp.Main = append(bp.Main, p)
		queue = append(queue, pending{path: p})
	}
	seen := map[string]bool{}
	for len(queue) > 0 {
		item := queue[0]
		queue = queue[1:]
		if seen[item.path] {
			continue
		}
		seen[item.path] = true
		var src []byte
		var err error
		if l.ReadFile == nil {
			err = l.checkPath(item.path)
		}
		if err == nil {
			src, err = read(item.path)
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cannot read blueprint file",
				Detail:   fmt.Sprintf("Reading %s: %s.", item.path, unwrapPathError(err)),
				Subject:  item.from,
			})
			continue
		}
		bp.Sources[item.path] = src
		f, d := parseHCL(src, item.path)
		diags = append(diags, d...)
		if f == nil || f.Body == nil {
			continue
		}
		bp.Files[item.path] = f
		imports, d := decodeImports(f)
		diags = append(diags, d...)
		for _, imp := range imports {
			target := imp.path
			if !filepath.IsAbs(target) {
				target = filepath.Join(filepath.Dir(item.path), target)
			}
			r := imp.rng
			queue = append(queue, pending{path: filepath.Clean(target), from: &r})
		}
		diags = append(diags, decodeFile(bp, f, false)...)
	}
	return bp, diags
}

// ReadBlueprintFile reads a blueprint file from disk: a regular file of at
// most MaxFileSize bytes (never a device, a FIFO or a directory, which could
// block or exhaust memory).
func ReadBlueprintFile(path string) ([]byte, error) {
	// Stat before opening: opening a FIFO blocks until a writer comes.
	if st, err := os.Stat(path); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("%s is %d bytes; a blueprint file may have at most %d", path, st.Size(), MaxFileSize)
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err == nil && len(src) > MaxFileSize {
		err = fmt.Errorf("%s is over %d bytes; a blueprint file may have at most %d", path, MaxFileSize, MaxFileSize)
	}
	return src, err
}

// Parse is Load over in-memory sources (tests, fuzzing, stored blueprints).
func Parse(sources map[string][]byte, builtin map[string][]byte, main ...string) (*Blueprint, hcl.Diagnostics) {
	l := &Loader{
		Builtin: builtin,
		ReadFile: func(p string) ([]byte, error) {
			if src, ok := sources[filepath.Clean(p)]; ok {
				return src, nil
			}
			return nil, fmt.Errorf("open %s: %w", p, os.ErrNotExist)
		},
	}
	return l.Load(main...)
}

func unwrapPathError(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

type importRef struct {
	path string
	rng  hcl.Range
}

func decodeImports(f *hcl.File) ([]importRef, hcl.Diagnostics) {
	content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "imports"}}})
	attr, ok := content.Attributes["imports"]
	if !ok {
		return nil, diags
	}
	exprs, d := hcl.ExprList(attr.Expr)
	if d.HasErrors() {
		return nil, d
	}
	var out []importRef
	for _, e := range exprs {
		v, d := e.Value(nil)
		if d.HasErrors() || v.Type() != cty.String || v.IsNull() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid import",
				Detail:   "Each import must be a literal string: the path of a blueprint file, relative to this file.",
				Subject:  e.Range().Ptr(),
			})
			continue
		}
		out = append(out, importRef{path: v.AsString(), rng: e.Range()})
	}
	return out, diags
}

func decodeFile(bp *Blueprint, f *hcl.File, builtin bool) hcl.Diagnostics {
	content, diags := f.Body.Content(fileSchema)
	if builtin {
		// Built-in type files define types only.
		for _, block := range content.Blocks {
			switch block.Type {
			case "node_type":
				nt, d := decodeNodeTypeBlock(block)
				diags = append(diags, d...)
				if nt != nil {
					nt.Builtin = true
					bp.NodeTypes = append(bp.NodeTypes, nt)
				}
			case "policy_type":
				pt, d := decodePolicyTypeBlock(block)
				diags = append(diags, d...)
				if pt != nil {
					pt.Builtin = true
					bp.PolicyTypes = append(bp.PolicyTypes, pt)
				}
			case "relationship_type":
				rt, d := decodeRelationshipTypeBlock(block)
				diags = append(diags, d...)
				rt.Builtin = true
				bp.RelationshipTypes = append(bp.RelationshipTypes, rt)
			case "workflow":
				w, d := decodeWorkflowBlock(block)
				diags = append(diags, d...)
				w.Builtin = true
				bp.Workflows = append(bp.Workflows, w)
			}
		}
		return diags
	}
	for _, block := range content.Blocks {
		switch block.Type {
		case "input":
			in, d := decodeInputBlock(block)
			diags = append(diags, d...)
			if in != nil {
				bp.Inputs = append(bp.Inputs, in)
			}
		case "output":
			out, d := decodeOutputBlock(block)
			diags = append(diags, d...)
			if out != nil {
				bp.Outputs = append(bp.Outputs, out)
			}
		case "node_type":
			nt, d := decodeNodeTypeBlock(block)
			diags = append(diags, d...)
			if nt != nil {
				bp.NodeTypes = append(bp.NodeTypes, nt)
			}
		case "node":
			n, d := decodeNodeBlock(block)
			diags = append(diags, d...)
			if n != nil {
				bp.Nodes = append(bp.Nodes, n)
			}
		case "relationship_type":
			rt, d := decodeRelationshipTypeBlock(block)
			diags = append(diags, d...)
			bp.RelationshipTypes = append(bp.RelationshipTypes, rt)
		case "group":
			g, d := decodeGroupBlock(block)
			diags = append(diags, d...)
			bp.Groups = append(bp.Groups, g)
		case "workflow":
			w, d := decodeWorkflowBlock(block)
			diags = append(diags, d...)
			if w != nil {
				bp.Workflows = append(bp.Workflows, w)
			}
		case "policy_type":
			pt, d := decodePolicyTypeBlock(block)
			diags = append(diags, d...)
			if pt != nil {
				bp.PolicyTypes = append(bp.PolicyTypes, pt)
			}
		case "policy":
			p, d := decodePolicyBlock(block)
			diags = append(diags, d...)
			if p != nil {
				bp.Policies = append(bp.Policies, p)
			}
		case "source":
			src, d := decodeSourceBlock(block)
			diags = append(diags, d...)
			bp.MetricSources = append(bp.MetricSources, src)
		}
	}
	return diags
}

// checkName validates a block label used as a reference name.
func checkName(block *hcl.Block, kind string) hcl.Diagnostics {
	name := block.Labels[0]
	if validIdentifier(name) {
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s name", kind),
		Detail:   badIdentifierDetail,
		Subject:  &block.LabelRanges[0],
	}}
}

// checkTypeName validates a type name: identifiers joined by dots ("kubernetes.cluster").
func checkTypeName(block *hcl.Block, kind string) hcl.Diagnostics {
	name := block.Labels[0]
	for _, part := range strings.Split(name, ".") {
		if !validIdentifier(part) {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid %s name", kind),
				Detail:   "A type name is one or more names joined by dots, such as \"web\" or \"kubernetes.cluster\". " + badIdentifierDetail,
				Subject:  &block.LabelRanges[0],
			}}
		}
	}
	return nil
}

var inputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "type"}, {Name: "default"}, {Name: "description"}, {Name: "sensitive"},
}}

func decodeInputBlock(block *hcl.Block) (*Input, hcl.Diagnostics) {
	diags := checkName(block, "input")
	in := &Input{Name: block.Labels[0], Type: cty.DynamicPseudoType, DeclRange: block.DefRange}
	content, d := block.Body.Content(inputSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["type"]; ok {
		ty, d := typeexpr.TypeConstraint(attr.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			in.Type = ty
		}
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &in.Description)...)
	diags = append(diags, decodeStaticBool(content.Attributes["sensitive"], &in.Sensitive)...)
	if attr, ok := content.Attributes["default"]; ok {
		v, d := attr.Expr.Value(staticEvalContext())
		diags = append(diags, d...)
		if !d.HasErrors() {
			cv, err := convert.Convert(v, in.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid default value for input",
					Detail:   fmt.Sprintf("The default does not match the input's type %s: %s.", typeexpr.TypeString(in.Type), err),
					Subject:  attr.Expr.Range().Ptr(),
				})
			} else {
				in.Default, in.HasDefault = cv, true
			}
		}
	}
	return in, diags
}

var outputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "value", Required: true}, {Name: "description"}, {Name: "sensitive"},
}}

func decodeOutputBlock(block *hcl.Block) (*Output, hcl.Diagnostics) {
	diags := checkName(block, "output")
	out := &Output{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(outputSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["value"]; ok {
		out.Value = attr.Expr
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &out.Description)...)
	diags = append(diags, decodeStaticBool(content.Attributes["sensitive"], &out.Sensitive)...)
	return out, diags
}

var propertySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "type"}, {Name: "default"}, {Name: "required"}, {Name: "description"},
	{Name: "format"}, {Name: "one_of"}, {Name: "minimum"}, {Name: "maximum"},
	{Name: "exclusive_minimum"}, {Name: "exclusive_maximum"},
}}

// decodePropertyBlock decodes property and parameter blocks. Without a
// default, a property is required unless it says `required = false`.
func decodePropertyBlock(block *hcl.Block, kind string) (*Property, hcl.Diagnostics) {
	diags := checkName(block, kind)
	p := &Property{Name: block.Labels[0], Type: cty.DynamicPseudoType, DeclRange: block.DefRange}
	content, d := block.Body.Content(propertySchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["type"]; ok {
		ty, d := typeexpr.TypeConstraint(attr.Expr)
		diags = append(diags, d...)
		if !d.HasErrors() {
			p.Type = ty
		}
	}
	if attr, ok := content.Attributes["default"]; ok {
		p.Default = attr.Expr
	}
	p.Required = p.Default == nil
	if attr, ok := content.Attributes["required"]; ok {
		diags = append(diags, decodeStaticBool(attr, &p.Required)...)
		if p.Required && p.Default != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Required %s with a default", kind),
				Detail:   "A default makes a value optional; remove either `required = true` or the default.",
				Subject:  attr.Expr.Range().Ptr(),
			})
		}
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &p.Description)...)
	check, d := decodeValueCheck(content.Attributes, p.Type)
	diags = append(diags, d...)
	p.Check = check
	return p, diags
}

// decodeValueCheck reads the constraint attributes of a property or
// parameter block: format, one_of, and the bounds of a number.
func decodeValueCheck(attrs hcl.Attributes, ty cty.Type) (*ValueCheck, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	vc := &ValueCheck{}
	set := false
	if attr := attrs["format"]; attr != nil {
		diags = append(diags, decodeStaticString(attr, &vc.Format)...)
		vc.FormatRange = attr.Expr.Range()
		if vc.Format != "" && ty != cty.String && ty != cty.DynamicPseudoType {
			diags = append(diags, attrError(attr, "Format of a value that is not a string",
				fmt.Sprintf("A format checks a string; this value is declared %s. Remove the format, or declare `type = string`.", typeexpr.TypeString(ty))))
		}
		set = true
	}
	if attr := attrs["one_of"]; attr != nil {
		vc.OneOfRange = attr.Expr.Range()
		v, d := attr.Expr.Value(staticEvalContext())
		diags = append(diags, d...)
		if !d.HasErrors() {
			ok := v.IsKnown() && !v.IsNull() && (v.Type().IsListType() || v.Type().IsTupleType() || v.Type().IsSetType()) && v.LengthInt() > 0
			if ok {
				for it := v.ElementIterator(); it.Next(); {
					_, e := it.Element()
					if ty != cty.DynamicPseudoType {
						cv, err := convert.Convert(e, ty)
						if err != nil {
							diags = append(diags, attrError(attr, "Invalid one_of",
								fmt.Sprintf("Every value of one_of must be %s: %s.", typeexpr.TypeString(ty), err)))
							continue
						}
						e = cv
					}
					if !e.IsKnown() || e.IsNull() || !e.Type().IsPrimitiveType() {
						ok = false
						break
					}
					vc.OneOf = append(vc.OneOf, e)
				}
			}
			if !ok {
				diags = append(diags, attrError(attr, "Invalid one_of", "one_of is a list of the values allowed, such as [\"<\", \">\"]: strings, numbers or bools."))
			}
		}
		set = true
	}
	bound := func(inclusive, exclusive string, target **float64, excl *bool) {
		a, b := attrs[inclusive], attrs[exclusive]
		if a != nil && b != nil {
			diags = append(diags, attrError(b, fmt.Sprintf("Both %s and %s", inclusive, exclusive),
				fmt.Sprintf("Give one bound: %s includes the value itself, %s leaves it out.", inclusive, exclusive)))
			return
		}
		attr := a
		if attr == nil {
			attr, *excl = b, true
		}
		if attr == nil {
			return
		}
		set = true
		vc.RangeRange = attr.Expr.Range()
		v, d := attr.Expr.Value(staticEvalContext())
		diags = append(diags, d...)
		if d.HasErrors() {
			return
		}
		n, err := convert.Convert(v, cty.Number)
		if err != nil || !n.IsKnown() || n.IsNull() {
			diags = append(diags, attrError(attr, "Invalid "+attr.Name, attr.Name+" must be a number (for a duration, its seconds)."))
			return
		}
		f, _ := n.AsBigFloat().Float64()
		*target = &f
		if ty != cty.Number && ty != cty.String && ty != cty.DynamicPseudoType {
			diags = append(diags, attrError(attr, "Bound of a value that is not a number",
				fmt.Sprintf("%s bounds a number, or a duration's seconds; this value is declared %s.", attr.Name, typeexpr.TypeString(ty))))
		}
	}
	bound("minimum", "exclusive_minimum", &vc.Minimum, &vc.ExclusiveMinimum)
	bound("maximum", "exclusive_maximum", &vc.Maximum, &vc.ExclusiveMaximum)
	if vc.Minimum != nil && vc.Maximum != nil && *vc.Minimum > *vc.Maximum {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Empty range",
			Detail: fmt.Sprintf("The minimum (%g) is above the maximum (%g): no value would do.", *vc.Minimum, *vc.Maximum), Subject: vc.RangeRange.Ptr()})
	}
	if !set {
		return nil, diags
	}
	return vc, diags
}

var operationSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "implementation", Required: true}, {Name: "inputs"}, {Name: "timeout"},
	{Name: "max_retries"}, {Name: "retry_interval"},
}}

func decodeOperationBlock(block *hcl.Block) (*Operation, hcl.Diagnostics) {
	diags := checkName(block, "operation")
	op, d := decodeOperationBody(block)
	return op, append(diags, d...)
}

// decodeOperationBody reads an operation block's attributes.
func decodeOperationBody(block *hcl.Block) (*Operation, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	op := &Operation{
		Name:          block.Labels[0],
		Timeout:       DefaultOperationTimeout,
		MaxRetries:    DefaultMaxRetries,
		RetryInterval: DefaultRetryInterval,
		DeclRange:     block.DefRange,
	}
	content, d := block.Body.Content(operationSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["implementation"]; ok {
		diags = append(diags, decodeStaticString(attr, &op.Implementation)...)
		op.ImplRange = attr.Expr.Range()
	}
	if attr, ok := content.Attributes["inputs"]; ok {
		op.Inputs = attr.Expr
	}
	diags = append(diags, decodeDuration(content.Attributes["timeout"], &op.Timeout)...)
	diags = append(diags, decodeDuration(content.Attributes["retry_interval"], &op.RetryInterval)...)
	if attr, ok := content.Attributes["max_retries"]; ok {
		v, d := attr.Expr.Value(nil)
		diags = append(diags, d...)
		if !d.HasErrors() {
			var n int64
			if cv, err := convert.Convert(v, cty.Number); err != nil || cv.IsNull() || !cv.IsKnown() || !cv.AsBigFloat().IsInt() {
				diags = append(diags, attrError(attr, "Invalid max_retries", "max_retries must be a whole number, 0 or more."))
			} else if n, _ = cv.AsBigFloat().Int64(); n < 0 {
				diags = append(diags, attrError(attr, "Invalid max_retries", "max_retries must be a whole number, 0 or more."))
			} else {
				op.MaxRetries = int(n)
			}
		}
	}
	return op, diags
}

var nodeTypeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "derived_from"}, {Name: "description"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "property", LabelNames: []string{"name"}},
		{Type: "operation", LabelNames: []string{"name"}},
	},
}

func decodeNodeTypeBlock(block *hcl.Block) (*NodeType, hcl.Diagnostics) {
	diags := checkTypeName(block, "node type")
	nt := &NodeType{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(nodeTypeSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["derived_from"]; ok {
		diags = append(diags, decodeStaticString(attr, &nt.DerivedFrom)...)
		nt.DerivedRange = attr.Expr.Range()
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &nt.Description)...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "property":
			p, d := decodePropertyBlock(b, "property")
			diags = append(diags, d...)
			nt.Properties = append(nt.Properties, p)
		case "operation":
			op, d := decodeOperationBlock(b)
			diags = append(diags, d...)
			nt.Operations = append(nt.Operations, op)
		}
	}
	diags = append(diags, duplicateLabels(content.Blocks, "property")...)
	diags = append(diags, duplicateLabels(content.Blocks, "operation")...)
	return nt, diags
}

var nodeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"}, {Name: "properties"},
		{Name: ContainedIn}, {Name: ConnectedTo}, {Name: DependsOn},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "operation", LabelNames: []string{"name"}},
		{Type: "instances"},
		{Type: "relationship"},
	},
}

// RootNodeType is the type of a node that declares none.
const RootNodeType = "orch.Root"

func decodeNodeBlock(block *hcl.Block) (*Node, hcl.Diagnostics) {
	diags := checkName(block, "node")
	n := &Node{Name: block.Labels[0], Type: RootNodeType, TypeRange: block.DefRange, DeclRange: block.DefRange, Instances: SingleInstance}
	content, d := block.Body.Content(nodeSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["type"]; ok {
		diags = append(diags, decodeStaticString(attr, &n.Type)...)
		n.TypeRange = attr.Expr.Range()
	}
	if attr, ok := content.Attributes["properties"]; ok {
		n.Properties = attr.Expr
	}
	if attr, ok := content.Attributes[ContainedIn]; ok {
		name, rng, d := decodeRef(attr.Expr, "node")
		diags = append(diags, d...)
		if name != "" {
			n.Relationships = append(n.Relationships, Relationship{Kind: ContainedIn, Target: name, Range: rng, Type: ContainedInType, TypeRange: rng})
		}
	}
	for _, kind := range []string{ConnectedTo, DependsOn} {
		attr, ok := content.Attributes[kind]
		if !ok {
			continue
		}
		refs, d := decodeRefList(attr.Expr, "node")
		diags = append(diags, d...)
		for _, r := range refs {
			n.Relationships = append(n.Relationships, Relationship{Kind: kind, Target: r.name, Range: r.rng, Type: kindTypes[kind], TypeRange: r.rng})
		}
	}
	diags = append(diags, decodeInstances(content.Blocks, fmt.Sprintf("Node %q", n.Name), &n.Instances)...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "operation":
			op, d := decodeOperationBlock(b)
			diags = append(diags, d...)
			n.Operations = append(n.Operations, op)
		case "relationship":
			r, d := decodeRelationshipBlock(b)
			diags = append(diags, d...)
			if r != nil {
				n.Relationships = append(n.Relationships, *r)
			}
		}
	}
	diags = append(diags, duplicateLabels(content.Blocks, "operation")...)
	return n, diags
}

// kindTypes are the built-in relationship types of the relationship
// attributes.
var kindTypes = map[string]string{ContainedIn: ContainedInType, ConnectedTo: ConnectedToType, DependsOn: DependsOnType}

var workflowSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "uses"}, {Name: "description"}, {Name: "timeout"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "parameter", LabelNames: []string{"name"}},
		{Type: "step", LabelNames: []string{"name"}},
		{Type: "precondition"},
	},
}

var stepSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "target"}, {Name: CallOperation}, {Name: SetState}, {Name: Delegate}, {Name: Inline},
	{Name: "parameters"}, {Name: "inputs"}, {Name: "on_success"}, {Name: "on_failure"},
}}

var preconditionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "target", Required: true}, {Name: "condition", Required: true}, {Name: "error_message", Required: true},
}}

func decodeWorkflowBlock(block *hcl.Block) (*Workflow, hcl.Diagnostics) {
	diags := checkName(block, "workflow")
	w := &Workflow{Name: block.Labels[0], Timeout: DefaultWorkflowTimeout, DeclRange: block.DefRange}
	content, d := block.Body.Content(workflowSchema)
	diags = append(diags, d...)
	diags = append(diags, decodeDuration(content.Attributes["timeout"], &w.Timeout)...)
	if attr, ok := content.Attributes["uses"]; ok {
		diags = append(diags, decodeStaticString(attr, &w.Uses)...)
		w.UsesRange = attr.Expr.Range()
	}
	diags = append(diags, decodeStaticString(content.Attributes["description"], &w.Description)...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "parameter":
			p, d := decodePropertyBlock(b, "parameter")
			diags = append(diags, d...)
			w.Parameters = append(w.Parameters, p)
		case "step":
			st, d := decodeStepBlock(b)
			diags = append(diags, d...)
			w.Steps = append(w.Steps, st)
		case "precondition":
			pc, d := decodePreconditionBlock(b)
			diags = append(diags, d...)
			if pc != nil {
				w.Preconditions = append(w.Preconditions, pc)
			}
		}
	}
	diags = append(diags, duplicateLabels(content.Blocks, "parameter")...)
	diags = append(diags, duplicateLabels(content.Blocks, "step")...)
	_, hasUses := content.Attributes["uses"]
	switch {
	case hasUses && (len(w.Steps) > 0 || len(w.Preconditions) > 0):
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Workflow with uses and steps",
			Detail:  fmt.Sprintf("Workflow %q uses an implementation and has steps or preconditions: give one or the other (a step may inline a workflow that uses one).", w.Name),
			Subject: w.UsesRange.Ptr()})
	case !hasUses && len(w.Steps) == 0:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Workflow has nothing to run",
			Detail:  fmt.Sprintf("Workflow %q needs `uses = \"IMPLEMENTATION\"` or `step \"NAME\" { ... }` blocks.", w.Name),
			Subject: w.DeclRange.Ptr()})
	}
	return w, diags
}

func decodeStepBlock(block *hcl.Block) (*Step, hcl.Diagnostics) {
	diags := checkName(block, "step")
	st := &Step{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(stepSchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["target"]; ok {
		st.Target, st.TargetGroup, st.TargetRange, d = decodeTarget(attr.Expr)
		diags = append(diags, d...)
	}
	for _, act := range StepActivities {
		attr, ok := content.Attributes[act]
		if !ok {
			continue
		}
		if st.Activity != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Step with two activities",
				Detail:  fmt.Sprintf("Step %q has %s and %s: a step has exactly one activity (%s).", st.Name, st.Activity, act, strings.Join(StepActivities, ", ")),
				Subject: attr.NameRange.Ptr()})
			continue
		}
		st.Activity, st.ActivityRange = act, attr.Expr.Range()
		if act == Inline {
			name, rng, d := decodeRef(attr.Expr, "workflow")
			diags = append(diags, d...)
			st.Value, st.ActivityRange = name, rng
		} else {
			diags = append(diags, decodeStaticString(attr, &st.Value)...)
		}
	}
	if st.Activity == "" {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Step with no activity",
			Detail:  fmt.Sprintf("Step %q does nothing: give it one of %s.", st.Name, strings.Join(StepActivities, ", ")),
			Subject: block.DefRange.Ptr()})
	}
	if attr, ok := content.Attributes["parameters"]; ok {
		st.Parameters = attr.Expr
		if st.Activity != Inline && st.Activity != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Parameters without inline",
				Detail:  fmt.Sprintf("Step %q gives parameters, which only an inline step has (the inlined workflow's); for an operation's inputs write inputs = { ... }.", st.Name),
				Subject: attr.NameRange.Ptr()})
		}
	}
	if attr, ok := content.Attributes["inputs"]; ok {
		st.Inputs = attr.Expr
		if st.Activity != CallOperation && st.Activity != "" {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Inputs without call_operation",
				Detail:  fmt.Sprintf("Step %q gives inputs, which only a call_operation step has.", st.Name),
				Subject: attr.NameRange.Ptr()})
		}
	}
	switch {
	case st.Activity == Inline && st.Target != "":
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Inline step with a target",
			Detail:  fmt.Sprintf("Step %q inlines a workflow, which picks its own targets: leave out target.", st.Name),
			Subject: st.TargetRange.Ptr()})
	case st.Activity != Inline && st.Activity != "" && st.Target == "" && content.Attributes["target"] == nil:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Step without a target",
			Detail:  fmt.Sprintf("Step %q runs %s on the instances of its target: give target = node.NAME (or group.NAME).", st.Name, st.Activity),
			Subject: block.DefRange.Ptr()})
	}
	for _, edge := range []struct {
		name string
		to   *[]StepRef
	}{{"on_success", &st.OnSuccess}, {"on_failure", &st.OnFailure}} {
		attr, ok := content.Attributes[edge.name]
		if !ok {
			continue
		}
		refs, d := decodeRefList(attr.Expr, "step")
		diags = append(diags, d...)
		for _, r := range refs {
			*edge.to = append(*edge.to, StepRef{r.name, r.rng})
		}
	}
	return st, diags
}

func decodePreconditionBlock(block *hcl.Block) (*Precondition, hcl.Diagnostics) {
	pc := &Precondition{DeclRange: block.DefRange}
	content, diags := block.Body.Content(preconditionSchema)
	if attr, ok := content.Attributes["target"]; ok {
		var d hcl.Diagnostics
		pc.Target, pc.TargetGroup, pc.TargetRange, d = decodeTarget(attr.Expr)
		diags = append(diags, d...)
	}
	if attr, ok := content.Attributes["condition"]; ok {
		pc.Condition = attr.Expr
	}
	diags = append(diags, decodeStaticString(content.Attributes["error_message"], &pc.ErrorMessage)...)
	if pc.Condition == nil || pc.Target == "" {
		return nil, diags
	}
	return pc, diags
}

// decodeTarget reads a step's or precondition's target: node.NAME or
// group.NAME.
func decodeTarget(expr hcl.Expression) (name string, group bool, rng hcl.Range, diags hcl.Diagnostics) {
	trav, d := hcl.AbsTraversalForExpr(expr)
	if !d.HasErrors() && trav.RootName() == "group" {
		name, rng, diags = refName(trav, "group")
		return name, true, rng, diags
	}
	if d.HasErrors() {
		return "", false, expr.Range(), hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid target",
			Detail: "Expected node.NAME or group.NAME.", Subject: expr.Range().Ptr()}}
	}
	name, rng, diags = refName(trav, "node")
	if diags.HasErrors() {
		diags[0].Summary, diags[0].Detail = "Invalid target", "Expected node.NAME or group.NAME."
	}
	return name, false, rng, diags
}

var policyTypeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "description"}, {Name: "uses"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "parameter", LabelNames: []string{"name"}},
		{Type: "condition", LabelNames: []string{"name"}},
		{Type: "validation"},
	},
}

var validationSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "condition", Required: true}, {Name: "error_message", Required: true},
}}

var conditionSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "when"}, {Name: "description"}, {Name: "direction"}, {Name: "values"}}}

func decodePolicyTypeBlock(block *hcl.Block) (*PolicyType, hcl.Diagnostics) {
	diags := checkTypeName(block, "policy type")
	pt := &PolicyType{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(policyTypeSchema)
	diags = append(diags, d...)
	diags = append(diags, decodeStaticString(content.Attributes["description"], &pt.Description)...)
	diags = append(diags, decodeStaticString(content.Attributes["uses"], &pt.Uses)...)
	for _, b := range content.Blocks {
		switch b.Type {
		case "parameter":
			p, d := decodePropertyBlock(b, "parameter")
			diags = append(diags, d...)
			pt.Parameters = append(pt.Parameters, p)
		case "validation":
			v := &Validation{DeclRange: b.DefRange}
			vc, d := b.Body.Content(validationSchema)
			diags = append(diags, d...)
			if attr := vc.Attributes["condition"]; attr != nil {
				v.Condition = attr.Expr
			}
			diags = append(diags, decodeStaticString(vc.Attributes["error_message"], &v.ErrorMessage)...)
			if v.Condition != nil {
				pt.Validations = append(pt.Validations, v)
			}
		case "condition":
			diags = append(diags, checkName(b, "condition")...)
			c := &Condition{Name: b.Labels[0], DeclRange: b.DefRange}
			cc, d := b.Body.Content(conditionSchema)
			diags = append(diags, d...)
			if attr, ok := cc.Attributes["when"]; ok {
				c.When = attr.Expr
			} else if pt.Uses == "" {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Missing condition expression",
					Detail:   "A condition of a policy type written in HCL needs `when = <expression>`, for example `when = mean(window(\"cpu\", \"30s\")) > param.threshold`.",
					Subject:  &b.DefRange,
				})
			}
			diags = append(diags, decodeStaticString(cc.Attributes["description"], &c.Description)...)
			if attr := cc.Attributes["direction"]; attr != nil {
				d := decodeStaticString(attr, &c.Direction)
				diags = append(diags, d...)
				if !d.HasErrors() && c.Direction != "up" && c.Direction != "down" {
					diags = append(diags, attrError(attr, "Invalid direction",
						fmt.Sprintf("direction is \"up\" (the condition scales up) or \"down\" (it scales down), not %q.", c.Direction)))
				}
			}
			if attr := cc.Attributes["values"]; attr != nil {
				v, d := attr.Expr.Value(staticEvalContext())
				diags = append(diags, d...)
				if !d.HasErrors() {
					l, err := convert.Convert(v, cty.List(cty.String))
					if err != nil || l.IsNull() || !l.IsWhollyKnown() {
						diags = append(diags, attrError(attr, "Invalid values", "values lists the names of the values the condition reports, such as [\"value\", \"hosts\"]."))
					} else {
						for it := l.ElementIterator(); it.Next(); {
							_, e := it.Element()
							c.Values = append(c.Values, e.AsString())
						}
					}
				}
			}
			pt.Conditions = append(pt.Conditions, c)
		}
	}
	if len(pt.Conditions) == 0 {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Policy type without conditions",
			Detail:   "A policy type needs at least one `condition \"name\" { when = ... }` block; policies trigger workflows by condition name.",
			Subject:  &block.DefRange,
		})
	}
	diags = append(diags, duplicateLabels(content.Blocks, "parameter")...)
	diags = append(diags, duplicateLabels(content.Blocks, "condition")...)
	for _, p := range pt.Parameters {
		if p.Name == CooldownParameter && p.Check == nil {
			// The cooldown of every condition: a typo must not be no cooldown.
			zero := 0.0
			p.Check = &ValueCheck{Format: FormatDuration, Minimum: &zero, FormatRange: p.DeclRange, RangeRange: p.DeclRange}
		}
	}
	inferChecks(pt)
	return pt, diags
}

var policySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "type", Required: true}, {Name: "targets"}, {Name: "properties"},
		{Name: "on_missing_data"}, {Name: "min_hosts"}, {Name: "initial_delay"}},
	Blocks: []hcl.BlockHeaderSchema{{Type: "trigger", LabelNames: []string{"condition"}}},
}

var triggerSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "workflow", Required: true}, {Name: "parameters"},
}}

func decodePolicyBlock(block *hcl.Block) (*Policy, hcl.Diagnostics) {
	diags := checkName(block, "policy")
	p := &Policy{Name: block.Labels[0], DeclRange: block.DefRange}
	content, d := block.Body.Content(policySchema)
	diags = append(diags, d...)
	if attr, ok := content.Attributes["type"]; ok {
		p.TypeRange = attr.Expr.Range()
		// Either policy_type.NAME or a string naming a built-in type.
		if trav, d := hcl.AbsTraversalForExpr(attr.Expr); !d.HasErrors() {
			name, _, d := refName(trav, "policy_type")
			diags = append(diags, d...)
			p.Type = name
		} else {
			diags = append(diags, decodeStaticString(attr, &p.Type)...)
		}
	}
	if attr, ok := content.Attributes["targets"]; ok {
		refs, d := decodeRefList(attr.Expr, "node")
		diags = append(diags, d...)
		for _, r := range refs {
			p.Targets = append(p.Targets, r.name)
			p.TargetRanges = append(p.TargetRanges, r.rng)
		}
	}
	if attr, ok := content.Attributes["properties"]; ok {
		p.Properties = attr.Expr
	}
	if attr := content.Attributes["on_missing_data"]; attr != nil {
		p.OnMissingDataRange = attr.Expr.Range()
		var mode string
		d := decodeStaticString(attr, &mode)
		diags = append(diags, d...)
		p.OnMissingData = MissingData(mode)
		if !d.HasErrors() && !slices.Contains(MissingDataModes, p.OnMissingData) {
			diags = append(diags, attrError(attr, "Invalid on_missing_data",
				fmt.Sprintf("on_missing_data is \"hold\" (do nothing; the default), \"scale_up\" (fire the condition that scales up) or \"trigger\" (run the policy's trigger \"missing_data\"), not %q.", p.OnMissingData)))
		}
	}
	if attr := content.Attributes["min_hosts"]; attr != nil {
		v, d := attr.Expr.Value(staticEvalContext())
		diags = append(diags, d...)
		if !d.HasErrors() {
			n, err := convert.Convert(v, cty.Number)
			var i int64
			ok := err == nil && n.IsKnown() && !n.IsNull()
			if ok {
				var acc big.Accuracy
				i, acc = n.AsBigFloat().Int64()
				ok = acc == big.Exact && i >= 1 && i <= 1<<20
			}
			if !ok {
				diags = append(diags, attrError(attr, "Invalid min_hosts", "min_hosts must be a whole number of hosts, 1 or more."))
			}
			p.MinHosts = int(i)
		}
	}
	if attr := content.Attributes["initial_delay"]; attr != nil {
		var s string
		d := decodeStaticString(attr, &s)
		diags = append(diags, d...)
		if !d.HasErrors() {
			dur, err := ParseDurationOrZero(s)
			if err != nil {
				diags = append(diags, attrError(attr, "Invalid initial_delay", err.Error()+" (\"0s\": no grace)."))
			} else {
				p.InitialDelay = &dur
			}
		}
	}
	for _, b := range content.Blocks {
		t := &Trigger{Condition: b.Labels[0], DeclRange: b.DefRange}
		tc, d := b.Body.Content(triggerSchema)
		diags = append(diags, d...)
		if attr, ok := tc.Attributes["workflow"]; ok {
			name, rng, d := decodeRef(attr.Expr, "workflow")
			diags = append(diags, d...)
			t.Workflow, t.WorkflowRange = name, rng
		}
		if attr, ok := tc.Attributes["parameters"]; ok {
			t.Parameters = attr.Expr
		}
		p.Triggers = append(p.Triggers, t)
	}
	diags = append(diags, duplicateLabels(content.Blocks, "trigger")...)
	return p, diags
}

type namedRef struct {
	name string
	rng  hcl.Range
}

// decodeRef decodes an expression that must be exactly `KIND.NAME`.
func decodeRef(expr hcl.Expression, kind string) (string, hcl.Range, hcl.Diagnostics) {
	trav, diags := hcl.AbsTraversalForExpr(expr)
	if diags.HasErrors() {
		return "", expr.Range(), hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference",
			Detail:   fmt.Sprintf("Expected a reference of the form %s.NAME.", kind),
			Subject:  expr.Range().Ptr(),
		}}
	}
	return refName(trav, kind)
}

func refName(trav hcl.Traversal, kind string) (string, hcl.Range, hcl.Diagnostics) {
	rng := trav.SourceRange()
	bad := hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid reference",
		Detail:   fmt.Sprintf("Expected a reference of the form %s.NAME.", kind),
		Subject:  rng.Ptr(),
	}}
	if len(trav) != 2 || trav.RootName() != kind {
		return "", rng, bad
	}
	attr, ok := trav[1].(hcl.TraverseAttr)
	if !ok {
		return "", rng, bad
	}
	return attr.Name, rng, nil
}

func decodeRefList(expr hcl.Expression, kind string) ([]namedRef, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid reference list",
			Detail:   fmt.Sprintf("Expected a list of references, such as [%s.a, %s.b].", kind, kind),
			Subject:  expr.Range().Ptr(),
		}}
	}
	var out []namedRef
	for _, e := range exprs {
		name, rng, d := decodeRef(e, kind)
		diags = append(diags, d...)
		if name != "" {
			out = append(out, namedRef{name, rng})
		}
	}
	return out, diags
}

func duplicateLabels(blocks hcl.Blocks, typ string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	seen := map[string]*hcl.Block{}
	for _, b := range blocks {
		if b.Type != typ || len(b.Labels) == 0 {
			continue
		}
		if prev, ok := seen[b.Labels[0]]; ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Duplicate %s %q", typ, b.Labels[0]),
				Detail:   fmt.Sprintf("A %s named %q was already declared at %s. Names must be unique.", typ, b.Labels[0], prev.DefRange),
				Subject:  &b.LabelRanges[0],
			})
			continue
		}
		seen[b.Labels[0]] = b
	}
	return diags
}

func attrError(attr *hcl.Attribute, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: attr.Expr.Range().Ptr()}
}

func decodeStaticString(attr *hcl.Attribute, target *string) hcl.Diagnostics {
	if attr == nil {
		return nil
	}
	v, diags := attr.Expr.Value(staticEvalContext())
	if diags.HasErrors() {
		return diags
	}
	v, err := convert.Convert(v, cty.String)
	if err != nil || v.IsNull() || !v.IsKnown() {
		return hcl.Diagnostics{attrError(attr, fmt.Sprintf("Invalid %s", attr.Name), fmt.Sprintf("%s must be a string.", attr.Name))}
	}
	*target = v.AsString()
	return nil
}

func decodeStaticBool(attr *hcl.Attribute, target *bool) hcl.Diagnostics {
	if attr == nil {
		return nil
	}
	v, diags := attr.Expr.Value(staticEvalContext())
	if diags.HasErrors() {
		return diags
	}
	v, err := convert.Convert(v, cty.Bool)
	if err != nil || v.IsNull() || !v.IsKnown() {
		return hcl.Diagnostics{attrError(attr, fmt.Sprintf("Invalid %s", attr.Name), fmt.Sprintf("%s must be true or false.", attr.Name))}
	}
	*target = v.True()
	return nil
}

// decodeDuration reads a duration string such as "30s" or "1m30s", with the
// error on the attribute's range (not a bare time.ParseDuration error).
func decodeDuration(attr *hcl.Attribute, target *time.Duration) hcl.Diagnostics {
	if attr == nil {
		return nil
	}
	var s string
	if diags := decodeStaticString(attr, &s); diags.HasErrors() {
		return diags
	}
	d, err := ParseDuration(s)
	if err != nil {
		return hcl.Diagnostics{attrError(attr, fmt.Sprintf("Invalid %s", attr.Name), err.Error())}
	}
	*target = d
	return nil
}

// ParseDuration parses a positive Go duration ("30s", "1m30s", "250ms"):
// orch's one duration parser, for blueprints, flags and the API alike.
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s, false) }

// ParseDurationOrZero is ParseDuration allowing "0s" (no delay, no
// cooldown).
func ParseDurationOrZero(s string) (time.Duration, error) { return parseDuration(s, true) }

func parseDuration(s string, zero bool) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration; write a number with a unit and no space, such as \"30s\", \"5m\" or \"1h30m\"", s)
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("%q is negative; a duration is 0 or longer", s)
	case d == 0 && !zero:
		return 0, fmt.Errorf("%q must be longer than zero", s)
	}
	return d, nil
}

func parseAny(filename string, src []byte) (*hcl.File, hcl.Diagnostics) {
	if diags := checkLimits(src, filename); diags.HasErrors() {
		return nil, diags
	}
	p := hclparse.NewParser()
	if strings.HasSuffix(filename, ".json") {
		return p.ParseJSON(src, filename)
	}
	return p.ParseHCL(src, filename)
}

// validIdentifier is hclsyntax.ValidIdentifier without running the lexer:
// a letter or underscore, then letters, digits, underscores and dashes.
func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		letter := r == '_' || unicode.IsLetter(r)
		if i == 0 && !letter {
			return false
		}
		if !letter && r != '-' && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
