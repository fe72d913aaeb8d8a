package blueprints

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// describeBody renders every block and attribute with its range, so two
// parses of the same file can be compared exactly.
func describeBody(b *hclsyntax.Body) string {
	var out strings.Builder
	var walk func(b *hclsyntax.Body, indent string)
	walk = func(b *hclsyntax.Body, indent string) {
		for _, name := range slices.Sorted(maps.Keys(b.Attributes)) {
			a := b.Attributes[name]
			fmt.Fprintf(&out, "%sattr %s %s %s\n", indent, name, a.SrcRange, a.Expr.Range())
		}
		for _, blk := range b.Blocks {
			fmt.Fprintf(&out, "%sblock %s %v %s\n", indent, blk.Type, blk.Labels, blk.DefRange())
			walk(blk.Body, indent+"  ")
		}
	}
	walk(b, "")
	return out.String()
}

func TestParallelParseMatchesTheWholeParse(t *testing.T) {
	heredocs := strings.Repeat(`
node "doc" {
  properties = {
    text = <<EOT
node "not-a-block" {
properties = {}
}
EOT
  }
}
node "flat" {
type = "orch.Root"
properties = {
a = 1
}
}
/* a comment
node "commented" {}
*/
`, 40)
	big := string(generateBlueprint(1000))
	tests := map[string]string{
		"generated":                big,
		"heredocs and flat bodies": big + heredocs + big[:len(big)/3],
		"imports at the end":       big + "\nimports = [\"x.hcl\"]\n",
	}
	for name, src := range tests {
		t.Run(name, func(t *testing.T) {
			if len(src) < parallelParseMin {
				t.Fatalf("test file too small (%d bytes) for the parallel path", len(src))
			}
			if _, ok := parseParallel([]byte(src), "big.hcl"); !ok && name != "heredocs and flat bodies" {
				t.Fatalf("the parallel path was not taken")
			}
			got, gd := parseHCL([]byte(src), "big.hcl")
			want, wd := hclsyntax.ParseConfig([]byte(src), "big.hcl", hcl.InitialPos)
			if gd.Error() != wd.Error() {
				t.Fatalf("diagnostics differ:\n%s\nvs\n%s", gd, wd)
			}
			if g, w := describeBody(got.Body.(*hclsyntax.Body)), describeBody(want.Body.(*hclsyntax.Body)); g != w {
				t.Errorf("parallel parse differs from the whole parse")
			}
		})
	}
}

func TestParallelParseReportsErrorsLikeTheWholeParse(t *testing.T) {
	big := string(generateBlueprint(1000))
	for _, broken := range []string{
		big + "\nnode \"x\" {\n  properties = { a = \n}\n",       // error at the end
		big[:len(big)/2] + "\nnode \"y\" {\n" + big[len(big)/2:], // an unclosed block in the middle
		big + "\nimports = []\nimports = []\n",                   // a duplicate top-level attribute
	} {
		_, gd := parseHCL([]byte(broken), "big.hcl")
		_, wd := hclsyntax.ParseConfig([]byte(broken), "big.hcl", hcl.InitialPos)
		if !gd.HasErrors() || gd.Error() != wd.Error() {
			t.Errorf("diagnostics differ:\n%s\nvs\n%s", gd, wd)
		}
	}
}
