package blueprints

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// FuzzParse feeds arbitrary text to the whole language: parse, validate,
// resolve, print diagnostics. None of it may panic.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/invalid/*.hcl")
	examples, _ := filepath.Glob("../examples/*/*.hcl")
	for _, file := range append(seeds, examples...) {
		if src, err := os.ReadFile(file); err == nil {
			f.Add(src)
		}
	}
	f.Add([]byte(`node "a" { properties = { x = node.a.properties.x } }`))
	// Crashers: an unknown max_retries (found by fuzzing) and nesting that
	// overflowed the parser's stack.
	f.Add([]byte("node\"\"{\noperation\"\"{max_retries="))
	f.Add([]byte("x = " + strings.Repeat("[", 60000)))
	f.Add([]byte("x = \"${" + strings.Repeat("{a=", 20000) + "\""))
	f.Add([]byte(`policy_type "t" { condition "c" { when = min(window("x", "1s"), 1) > percentile(window("y","1s"), 200) } }`))
	f.Fuzz(func(t *testing.T, src []byte) {
		bp, diags := Parse(map[string][]byte{"fuzz.hcl": src}, CoreTypes, "fuzz.hcl")
		if bp == nil {
			t.Fatal("nil blueprint")
		}
		if !diags.HasErrors() {
			diags = append(diags, Validate(bp, testCatalog)...)
			if !diags.HasErrors() {
				inputs := map[string]cty.Value{}
				for _, in := range bp.Inputs {
					if !in.HasDefault {
						inputs[in.Name] = cty.StringVal("1")
					}
				}
				_, d := Resolve(bp, testCatalog, inputs)
				diags = append(diags, d...)
			}
		}
		_ = WriteDiagnostics(discard{}, bp.Files, diags)
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
