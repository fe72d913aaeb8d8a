package plugins

import (
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

type hostRef struct {
	Host string `param:"host"`
	Port int    `param:"port"`
}

func (h *hostRef) DecodeParam(v cty.Value) error {
	if v.Type() == cty.String {
		h.Host = v.AsString()
		return nil
	}
	return DecodeValue(v, h)
}

type decoded struct {
	Name    string        `param:"name"`
	Weight  int32         `param:"weight"`
	Ratio   float64       `param:"ratio"`
	On      bool          `param:"on"`
	Timeout time.Duration `param:"timeout"`
	Labels  []string      `param:"labels"`
	Cluster *struct {
		Context string `param:"context"`
	} `param:"cluster"`
	Master  *hostRef `param:"master"`
	Ignored string
}

func node(props map[string]cty.Value) cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal("n"), "type": cty.StringVal("t"), "properties": cty.ObjectVal(props)})
}

func TestDecodeTypedParameters(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  map[string]cty.Value
		check   func(d decoded) bool
		wantErr string
	}{
		{"strings and numbers convert to the field's kind", map[string]cty.Value{"name": cty.NumberIntVal(7), "weight": cty.StringVal("25"), "ratio": cty.NumberFloatVal(0.5), "on": cty.StringVal("true")},
			func(d decoded) bool { return d.Name == "7" && d.Weight == 25 && d.Ratio == 0.5 && d.On }, ""},
		{"absent and null leave the default", map[string]cty.Value{"weight": cty.NullVal(cty.Number)},
			func(d decoded) bool { return d.Weight == 5 && d.Name == "default" }, ""},
		{"an empty string is zero", map[string]cty.Value{"weight": cty.StringVal("")}, func(d decoded) bool { return d.Weight == 0 }, ""},
		{"a duration string", map[string]cty.Value{"timeout": cty.StringVal("1m30s")}, func(d decoded) bool { return d.Timeout == 90*time.Second }, ""},
		{"a list of strings, or commas", map[string]cty.Value{"labels": cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")})},
			func(d decoded) bool { return strings.Join(d.Labels, ",") == "a,b" }, ""},
		{"comma-separated labels", map[string]cty.Value{"labels": cty.StringVal("a, b,")}, func(d decoded) bool { return strings.Join(d.Labels, ",") == "a,b" }, ""},
		{"a node decodes from its properties", map[string]cty.Value{"cluster": node(map[string]cty.Value{"context": cty.StringVal("peer"), "kubeconfig": cty.StringVal("")})},
			func(d decoded) bool { return d.Cluster != nil && d.Cluster.Context == "peer" }, ""},
		{"a ParamDecoder takes a host string", map[string]cty.Value{"master": cty.StringVal("10.0.0.1")},
			func(d decoded) bool { return d.Master != nil && d.Master.Host == "10.0.0.1" }, ""},
		{"a ParamDecoder takes a node", map[string]cty.Value{"master": node(map[string]cty.Value{"host": cty.StringVal("m"), "port": cty.NumberIntVal(2222)})},
			func(d decoded) bool { return d.Master.Host == "m" && d.Master.Port == 2222 }, ""},
		{"sensitive values are decoded unmarked", map[string]cty.Value{"name": cty.StringVal("s").Mark("sensitive")}, func(d decoded) bool { return d.Name == "s" }, ""},
		{"a fraction is not a whole number", map[string]cty.Value{"weight": cty.NumberFloatVal(2.5)}, nil, "parameter weight: want a whole number, got 2.5"},
		{"a word is not a number", map[string]cty.Value{"weight": cty.StringVal("lots")}, nil, `parameter weight: "lots" is not a number`},
		{"a bad duration names the parameter", map[string]cty.Value{"timeout": cty.StringVal("60 s")}, nil, `parameter timeout: "60 s" is not a duration`},
		{"a string is not a node", map[string]cty.Value{"cluster": cty.StringVal("peer")}, nil, "parameter cluster: want an object (a node), got string"},
		{"a list is not a number", map[string]cty.Value{"ratio": cty.ListValEmpty(cty.String)}, nil, "parameter ratio: want a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := decoded{Name: "default", Weight: 5}
			err := Decode(tc.values, &d)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !tc.check(d):
				t.Errorf("decoded %+v", d)
			}
		})
	}
	if err := Decode(nil, decoded{}); err == nil {
		t.Error("decoding into a non-pointer succeeded")
	}
}
