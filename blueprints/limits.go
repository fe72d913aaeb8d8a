package blueprints

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// Limits of one blueprint (or inputs) file. The parser recurses once per
// nesting level: tens of thousands of brackets are a fatal stack overflow,
// which no recover catches, so a file is measured before it is parsed.
const (
	MaxFileSize = 4 << 20 // bytes
	MaxNesting  = 256     // brackets, braces, parentheses and template interpolations
)

// checkLimits refuses a file over MaxFileSize, or nested deeper than
// MaxNesting, with a diagnostic at the place it went too deep.
func checkLimits(src []byte, filename string) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Blueprint file too large",
			Detail:   fmt.Sprintf("%s is %d bytes; a blueprint file may have at most %d. Split it with imports.", filename, len(src), MaxFileSize),
			Subject:  &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	if at := tooDeep(src, MaxNesting); at >= 0 {
		pos := position(src, at)
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Too deeply nested",
			Detail:   fmt.Sprintf("Brackets, braces, parentheses and ${...} nest more than %d deep here; no blueprint needs that many.", MaxNesting),
			Subject:  &hcl.Range{Filename: filename, Start: pos, End: pos},
		}}
	}
	return nil
}

// frame kinds of the nesting scanner.
const (
	frameBracket  = iota // ( [ { in an expression
	frameTemplate        // ${ or %{ in a string: an expression up to }
	frameString          // "..."
	frameHeredoc         // <<MARKER ... MARKER
)

type frame struct {
	kind   int
	marker []byte // of a heredoc
}

// tooDeep returns the offset where src nests deeper than limit, or -1. It
// follows HCL's (and JSON's) lexical structure closely enough to skip what
// is not syntax: comments, string contents and heredoc bodies, but not the
// interpolations within them, which nest like any expression.
func tooDeep(src []byte, limit int) int {
	var stack []frame
	push := func(f frame) bool {
		stack = append(stack, f)
		return len(stack) > limit
	}
	top := func() int {
		if len(stack) == 0 {
			return frameBracket
		}
		return stack[len(stack)-1].kind
	}
	lineStart := true
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch top() {
		case frameString, frameHeredoc:
			if top() == frameHeredoc && lineStart {
				end := bytes.IndexByte(src[i:], '\n')
				if end < 0 {
					end = len(src) - i
				}
				if bytes.Equal(bytes.TrimSpace(src[i:i+end]), stack[len(stack)-1].marker) {
					stack = stack[:len(stack)-1]
					i += end
					lineStart = true
					continue
				}
			}
			lineStart = c == '\n'
			switch {
			case c == '\\' && top() == frameString:
				i++
			case c == '"' && top() == frameString:
				stack = stack[:len(stack)-1]
			case (c == '$' || c == '%') && i+2 < len(src) && src[i+1] == c && src[i+2] == '{':
				i += 2 // $${ and %%{ are literal
			case (c == '$' || c == '%') && i+1 < len(src) && src[i+1] == '{':
				i++
				if push(frame{kind: frameTemplate}) {
					return i
				}
			}
			continue
		}
		lineStart = c == '\n'
		switch c {
		case '#':
			i = skipLine(src, i)
			lineStart = true
		case '/':
			if i+1 < len(src) && src[i+1] == '/' {
				i = skipLine(src, i)
				lineStart = true
			} else if i+1 < len(src) && src[i+1] == '*' {
				end := bytes.Index(src[i+2:], []byte("*/"))
				if end < 0 {
					return -1 // unterminated: the parser says so
				}
				i += end + 3
			}
		case '"':
			if push(frame{kind: frameString}) {
				return i
			}
		case '<':
			if i+1 < len(src) && src[i+1] == '<' {
				j := i + 2
				if j < len(src) && src[j] == '-' {
					j++
				}
				k := j
				for k < len(src) && (isIdentByte(src[k])) {
					k++
				}
				if k > j && k < len(src) && (src[k] == '\n' || src[k] == '\r') {
					if push(frame{kind: frameHeredoc, marker: src[j:k]}) {
						return i
					}
					i = skipLine(src, k)
					lineStart = true
				}
			}
		case '(', '[', '{':
			if push(frame{kind: frameBracket}) {
				return i
			}
		case ')', ']', '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		}
	}
	return -1
}

// skipLine returns the offset of the newline ending the line at i.
func skipLine(src []byte, i int) int {
	if end := bytes.IndexByte(src[i:], '\n'); end >= 0 {
		return i + end
	}
	return len(src)
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// position is the line and column of offset at in src.
func position(src []byte, at int) hcl.Pos {
	line := 1 + bytes.Count(src[:at], []byte("\n"))
	col := at - bytes.LastIndexByte(src[:at], '\n')
	return hcl.Pos{Line: line, Column: col, Byte: at}
}
