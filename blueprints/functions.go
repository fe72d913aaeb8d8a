package blueprints

import (
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns HCL's standard functions, available in every expression
// of a blueprint. The map is shared: copy it before adding to it.
func Functions() map[string]function.Function { return stdFunctions }

var stdFunctions = map[string]function.Function{
	"abs":        stdlib.AbsoluteFunc,
	"ceil":       stdlib.CeilFunc,
	"floor":      stdlib.FloorFunc,
	"max":        stdlib.MaxFunc,
	"min":        stdlib.MinFunc,
	"pow":        stdlib.PowFunc,
	"parseint":   stdlib.ParseIntFunc,
	"signum":     stdlib.SignumFunc,
	"chomp":      stdlib.ChompFunc,
	"format":     stdlib.FormatFunc,
	"formatlist": stdlib.FormatListFunc,
	"indent":     stdlib.IndentFunc,
	"join":       stdlib.JoinFunc,
	"lower":      stdlib.LowerFunc,
	"upper":      stdlib.UpperFunc,
	"title":      stdlib.TitleFunc,
	"regex":      stdlib.RegexFunc,
	"regexall":   stdlib.RegexAllFunc,
	"replace":    stdlib.ReplaceFunc,
	"split":      stdlib.SplitFunc,
	"strrev":     stdlib.ReverseFunc,
	"substr":     stdlib.SubstrFunc,
	"trim":       stdlib.TrimFunc,
	"trimprefix": stdlib.TrimPrefixFunc,
	"trimsuffix": stdlib.TrimSuffixFunc,
	"trimspace":  stdlib.TrimSpaceFunc,
	"chunklist":  stdlib.ChunklistFunc,
	"coalesce":   stdlib.CoalesceFunc,
	"compact":    stdlib.CompactFunc,
	"concat":     stdlib.ConcatFunc,
	"contains":   stdlib.ContainsFunc,
	"distinct":   stdlib.DistinctFunc,
	"element":    stdlib.ElementFunc,
	"flatten":    stdlib.FlattenFunc,
	"keys":       stdlib.KeysFunc,
	"length":     stdlib.LengthFunc,
	"lookup":     stdlib.LookupFunc,
	"merge":      stdlib.MergeFunc,
	"range":      stdlib.RangeFunc,
	"reverse":    stdlib.ReverseListFunc,
	"setunion":   stdlib.SetUnionFunc,
	"slice":      stdlib.SliceFunc,
	"sort":       stdlib.SortFunc,
	"values":     stdlib.ValuesFunc,
	"zipmap":     stdlib.ZipmapFunc,
	"jsonencode": stdlib.JSONEncodeFunc,
	"jsondecode": stdlib.JSONDecodeFunc,
	"csvdecode":  stdlib.CSVDecodeFunc,
	"tostring":   stdlib.MakeToFunc(cty.String),
	"tonumber":   stdlib.MakeToFunc(cty.Number),
	"tobool":     stdlib.MakeToFunc(cty.Bool),
	"tolist":     stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
	"tomap":      stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
	"toset":      stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
	"try":        tryfunc.TryFunc,
	"can":        tryfunc.CanFunc,
}

// staticEvalContext allows functions but no references: for defaults of
// inputs and other values known before anything is resolved.
func staticEvalContext() *hcl.EvalContext { return staticCtx }

var staticCtx = &hcl.EvalContext{Functions: stdFunctions}

// WindowType is the type of `window(metric, duration)` in policy-type
// conditions: a moving time window of one metric. Window functions (mean, min,
// max, ...) reduce it to a number.
var WindowType = cty.Capsule("window", reflect.TypeOf(WindowSpec{}))

// WindowSpec is what a window expression names: a metric (or a regular
// expression over the messages' service, for services()) and a duration.
type WindowSpec struct {
	Metric   string
	Pattern  string  // services(pattern, duration); Metric is empty
	Duration float64 // seconds
}

// WindowReducers are the functions over a window; each takes the window and,
// for percentile and ewma, one number.
var WindowReducers = map[string]int{
	"mean": 0, "sum": 0, "count": 0, "rate": 0, "hosts": 0, "last": 0,
	"min": 0, "max": 0, "percentile": 1, "ewma": 1,
}

// WindowEvaluator computes window reductions when policies evaluate
// conditions. Type checking uses a nil evaluator: every reduction is an
// unknown number.
type WindowEvaluator interface {
	Reduce(fn string, w *WindowSpec, arg float64) (value float64, ok bool)
}

// ConditionFunctions returns the functions available in policy-type
// conditions: the standard ones, window(metric, duration), and the window
// reductions. min and max accept either a window or numbers.
func ConditionFunctions(ev WindowEvaluator) map[string]function.Function {
	fns := make(map[string]function.Function, len(stdFunctions)+len(WindowReducers)+1)
	for k, v := range stdFunctions {
		fns[k] = v
	}
	fns["window"] = function.New(&function.Spec{
		Description: "A moving window of one metric over the last duration.",
		Params: []function.Parameter{
			{Name: "metric", Type: cty.String},
			{Name: "duration", Type: cty.String},
		},
		Type: function.StaticReturnType(WindowType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			d, err := ParseDuration(args[1].AsString())
			if err != nil {
				return cty.UnknownVal(WindowType), function.NewArgError(1, err)
			}
			spec := &WindowSpec{Metric: args[0].AsString(), Duration: d.Seconds()}
			return cty.CapsuleVal(WindowType, spec), nil
		},
	})
	fns["services"] = function.New(&function.Spec{
		Description: "A moving window of every metric whose service matches a regular expression (Riemann's service selector).",
		Params: []function.Parameter{
			{Name: "pattern", Type: cty.String},
			{Name: "duration", Type: cty.String},
		},
		Type: function.StaticReturnType(WindowType),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if err := checkPattern(args[0].AsString()); err != nil {
				return cty.UnknownVal(WindowType), function.NewArgError(0, err)
			}
			d, err := ParseDuration(args[1].AsString())
			if err != nil {
				return cty.UnknownVal(WindowType), function.NewArgError(1, err)
			}
			return cty.CapsuleVal(WindowType, &WindowSpec{Pattern: args[0].AsString(), Duration: d.Seconds()}), nil
		},
	})
	for name, extra := range WindowReducers {
		fns[name] = windowReducer(name, extra, ev, fns[name])
	}
	return fns
}

func windowReducer(name string, extra int, ev WindowEvaluator, numeric function.Function) function.Function {
	params := []function.Parameter{{Name: "window", Type: WindowType, AllowUnknown: true}}
	if extra == 1 {
		params = append(params, function.Parameter{Name: "arg", Type: cty.Number})
	}
	reduce := func(args []cty.Value) (cty.Value, error) {
		// The argument is checked first, so a literal out of range is found
		// by type checking (no evaluator), not when metrics arrive.
		var arg float64
		if extra == 1 {
			if !args[1].IsKnown() || args[1].IsNull() {
				return cty.UnknownVal(cty.Number), nil
			}
			arg, _ = args[1].AsBigFloat().Float64()
			if name == "percentile" && (arg < 0 || arg > 100) {
				return cty.UnknownVal(cty.Number), function.NewArgErrorf(1, "percentile must be between 0 and 100, got %g", arg)
			}
			if name == "ewma" && (arg <= 0 || arg > 1) {
				return cty.UnknownVal(cty.Number), function.NewArgErrorf(1, "ewma smoothing factor must be in (0, 1], got %g", arg)
			}
		}
		if ev == nil || !args[0].IsKnown() {
			return cty.UnknownVal(cty.Number), nil
		}
		spec := args[0].EncapsulatedValue().(*WindowSpec)
		v, ok := ev.Reduce(name, spec, arg)
		if !ok || math.IsNaN(v) {
			// No data in the window: unknown, never zero. A condition over
			// an unknown value is not true.
			return cty.UnknownVal(cty.Number), nil
		}
		return cty.NumberFloatVal(v), nil
	}
	if name != "min" && name != "max" {
		return function.New(&function.Spec{
			Description: fmt.Sprintf("The %s of a metric window.", name),
			Params:      params,
			Type:        function.StaticReturnType(cty.Number),
			Impl:        func(args []cty.Value, _ cty.Type) (cty.Value, error) { return reduce(args) },
		})
	}
	// min/max: over a window, or HCL's min/max over numbers.
	return function.New(&function.Spec{
		Description: fmt.Sprintf("The %s of a metric window, or of numbers.", name),
		VarParam:    &function.Parameter{Name: "values", Type: cty.DynamicPseudoType, AllowUnknown: true},
		Type: func(args []cty.Value) (cty.Type, error) {
			if len(args) == 1 && args[0].Type().Equals(WindowType) {
				return cty.Number, nil
			}
			for i, a := range args {
				if a.Type().Equals(WindowType) {
					return cty.NilType, function.NewArgErrorf(i, "%s takes one window, or numbers", name)
				}
			}
			return numeric.ReturnType(argTypes(args))
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) == 1 && args[0].Type().Equals(WindowType) {
				return reduce(args)
			}
			return numeric.Call(args)
		},
	})
}

// validPatterns caches the patterns services() has accepted: conditions
// are evaluated on every metric, and compiling is the expensive part.
var validPatterns sync.Map

func checkPattern(p string) error {
	if _, ok := validPatterns.Load(p); ok {
		return nil
	}
	if _, err := regexp.Compile(p); err != nil {
		return err
	}
	validPatterns.Store(p, true)
	return nil
}

func argTypes(args []cty.Value) []cty.Type {
	out := make([]cty.Type, len(args))
	for i, a := range args {
		out[i] = a.Type()
	}
	return out
}
