package blueprints

import (
	"fmt"
	"strings"
	"testing"
)

// generateBlueprint writes a blueprint of n nodes of a few types, each
// depending on earlier ones, with property references, operations,
// workflows and policies: the shape of a large real deployment.
func generateBlueprint(n int) []byte {
	var b strings.Builder
	b.WriteString(`
input "env" { default = "prod" }
node_type "service" {
  property "port" { default = 80 }
  property "name" { type = string }
  operation "create" {
    implementation = "script"
    inputs = { command = ["echo", self.properties.name], PORT = self.properties.port }
    timeout = "30s"
  }
}
node_type "web" {
  derived_from = "service"
  property "replicas" { default = 2 }
}
workflow "scale" {
  uses = "script.workflow"
  parameter "amount" { default = "+1" }
}
policy_type "threshold" {
  parameter "limit" { type = number }
  condition "high" { when = mean(window("cpu", "30s")) > param.limit }
}
`)
	for i := 0; i < n; i++ {
		typ := "service"
		if i%2 == 0 {
			typ = "web"
		}
		fmt.Fprintf(&b, "node \"n%d\" {\n  type = %q\n  properties = { name = \"${input.env}-n%d\", port = %d }\n", i, typ, i, 8000+i%100)
		if i > 0 {
			fmt.Fprintf(&b, "  depends_on = [node.n%d]\n", i-1)
		}
		if i > 10 {
			fmt.Fprintf(&b, "  connected_to = [node.n%d]\n", i/2)
		}
		b.WriteString("}\n")
		if i%50 == 0 {
			fmt.Fprintf(&b, "policy \"p%d\" {\n  type = policy_type.threshold\n  targets = [node.n%d]\n  properties = { limit = %d }\n  trigger \"high\" { workflow = workflow.scale }\n}\n", i, i, 50+i%40)
		}
	}
	return []byte(b.String())
}

// BenchmarkParseValidate1000Nodes: parse + validate a generated 1,000-node
// blueprint (target: under 50 ms).
func BenchmarkParseValidate1000Nodes(b *testing.B) {
	src := generateBlueprint(1000)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		bp, diags := Parse(map[string][]byte{"big.hcl": src}, CoreTypes, "big.hcl")
		diags = append(diags, Validate(bp, testCatalog)...)
		if diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

// BenchmarkResolve1000Nodes: parse, validate and resolve (what deploy does).
func BenchmarkResolve1000Nodes(b *testing.B) {
	src := generateBlueprint(1000)
	b.ReportAllocs()
	for b.Loop() {
		bp, diags := Parse(map[string][]byte{"big.hcl": src}, CoreTypes, "big.hcl")
		if diags.HasErrors() {
			b.Fatal(diags)
		}
		if _, diags := Resolve(bp, testCatalog, nil); diags.HasErrors() {
			b.Fatal(diags)
		}
	}
}

func TestGeneratedBlueprintIsValid(t *testing.T) {
	bp, diags := Parse(map[string][]byte{"big.hcl": generateBlueprint(100)}, CoreTypes, "big.hcl")
	plan, d := Resolve(bp, testCatalog, nil)
	diags = append(diags, d...)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(plan.Nodes) != 100 || len(plan.Policies) != 2 {
		t.Errorf("nodes %d, policies %d", len(plan.Nodes), len(plan.Policies))
	}
}
