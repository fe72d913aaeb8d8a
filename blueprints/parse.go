package blueprints

import (
	"runtime"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// parallelParseMin is the file size from which parseHCL splits the work.
const parallelParseMin = 64 << 10

// parseHCL parses a blueprint file. A large file is cut at top-level block
// boundaries (lines that start with a name at column 1) and the pieces are
// parsed in parallel, with their true positions. The cut is only trusted
// when every piece parses cleanly and no top-level attribute repeats: a cut
// inside a block, string, heredoc or comment makes a piece fail, and then
// the whole file is parsed as one, which also gives the usual diagnostics.
func parseHCL(src []byte, filename string) (*hcl.File, hcl.Diagnostics) {
	if diags := checkLimits(src, filename); diags.HasErrors() {
		return nil, diags
	}
	if f, ok := parseParallel(src, filename); ok {
		return f, nil
	}
	return hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
}

// parseParallel is the split parse; ok is false when the file is small or
// the cut was not trusted.
func parseParallel(src []byte, filename string) (*hcl.File, bool) {
	workers := runtime.GOMAXPROCS(0)
	if len(src) < parallelParseMin || workers < 2 {
		return nil, false
	}
	// Many small pieces: the lexer's token slice regrows less, and the
	// pieces spread over the cores.
	pieces := 16 * workers
	if max := len(src) / (8 << 10); pieces > max {
		pieces = max
	}
	cuts := cutPoints(src, pieces)
	if len(cuts) < 2 {
		return nil, false
	}
	type piece struct {
		file  *hcl.File
		diags hcl.Diagnostics
	}
	parsed := make([]piece, len(cuts))
	var wg sync.WaitGroup
	for i, start := range cuts {
		end := len(src)
		if i+1 < len(cuts) {
			end = cuts[i+1].Byte
		}
		wg.Add(1)
		go func(i int, start hcl.Pos, end int) {
			defer wg.Done()
			f, d := hclsyntax.ParseConfig(src[start.Byte:end], filename, start)
			parsed[i] = piece{f, d}
		}(i, start, end)
	}
	wg.Wait()
	merged := &hclsyntax.Body{Attributes: hclsyntax.Attributes{}}
	for _, p := range parsed {
		if p.diags.HasErrors() || p.file == nil {
			return nil, false
		}
		body := p.file.Body.(*hclsyntax.Body)
		for name, attr := range body.Attributes {
			if _, dup := merged.Attributes[name]; dup {
				return nil, false
			}
			merged.Attributes[name] = attr
		}
		merged.Blocks = append(merged.Blocks, body.Blocks...)
	}
	first := parsed[0].file.Body.(*hclsyntax.Body)
	last := parsed[len(parsed)-1].file.Body.(*hclsyntax.Body)
	merged.SrcRange = hcl.RangeBetween(first.SrcRange, last.SrcRange)
	merged.EndRange = last.EndRange
	return &hcl.File{Body: merged, Bytes: src}, true
}

// cutPoints picks about n starts of lines that begin with a letter at column
// 1, evenly spread over src; the first is always the file's start.
func cutPoints(src []byte, n int) []hcl.Pos {
	cuts := []hcl.Pos{hcl.InitialPos}
	step := len(src) / n
	line, lineStart := 1, 0
	next := step
	for i := 0; i < len(src); i++ {
		if src[i] != '\n' {
			continue
		}
		line++
		lineStart = i + 1
		if lineStart < next || lineStart >= len(src) {
			continue
		}
		c := src[lineStart]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			cuts = append(cuts, hcl.Pos{Line: line, Column: 1, Byte: lineStart})
			next = lineStart + step
			if len(cuts) == n {
				break
			}
		}
	}
	return cuts
}
