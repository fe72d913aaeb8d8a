package plugins

import (
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/orchhq/orch/blueprints"
)

// ParamDecoder is implemented by parameter types that decode themselves
// from a value (a node given by name or as a host string, say).
type ParamDecoder interface {
	DecodeParam(v cty.Value) error
}

var durationType = reflect.TypeOf(time.Duration(0))

// Decode decodes typed workflow parameters into the fields of the struct
// dst points to, once, by their `param:"NAME"` tags. A parameter that is
// absent or null leaves its field as it is (set defaults first). Fields are
// decoded by kind:
//   - string, bool, int*, uint*, float*: the value converted (a whole
//     number for the integers; "" is zero);
//   - time.Duration: a duration string such as "60s" (orch's one parser);
//   - []string: a list of strings, or one string of comma-separated items;
//   - a struct (or a pointer to one): an object's attributes by their tags,
//     or, for a node ({name, type, properties}), its properties;
//   - a ParamDecoder: its DecodeParam.
//
// An error names the parameter.
func Decode(values map[string]cty.Value, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("decode parameters: want a pointer to a struct, got %T", dst)
	}
	return decodeStruct(func(name string) (cty.Value, bool) { v, ok := values[name]; return v, ok }, rv.Elem(), "")
}

// DecodeValue decodes one value into dst (a pointer), by the rules of
// Decode: for a ParamDecoder that decodes a node's properties into its own
// fields, say.
func DecodeValue(v cty.Value, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer {
		return fmt.Errorf("decode: want a pointer, got %T", dst)
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	return decodeValue(v, rv.Elem(), false)
}

func decodeStruct(get func(string) (cty.Value, bool), rv reflect.Value, prefix string) error {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("param"), ",")
		if name == "" || !f.IsExported() {
			continue
		}
		v, ok := get(name)
		if !ok {
			continue
		}
		v, _ = v.UnmarkDeep()
		if v.IsNull() || !v.IsKnown() {
			continue
		}
		if err := decodeValue(v, rv.Field(i), true); err != nil {
			return fmt.Errorf("parameter %s%s: %w", prefix, name, err)
		}
	}
	return nil
}

func decodeValue(v cty.Value, fv reflect.Value, custom bool) error {
	if custom && fv.CanAddr() {
		if d, ok := fv.Addr().Interface().(ParamDecoder); ok {
			return d.DecodeParam(v)
		}
	}
	if fv.Type() == durationType {
		s, err := convert.Convert(v, cty.String)
		if err != nil {
			return fmt.Errorf("want a duration such as \"60s\": %v", err)
		}
		if s.AsString() == "" {
			return nil // not given: the default stands
		}
		d, err := blueprints.ParseDuration(s.AsString())
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.Pointer:
		if fv.Type().Elem().Kind() != reflect.Struct {
			return fmt.Errorf("cannot decode into %s", fv.Type())
		}
		p := reflect.New(fv.Type().Elem())
		if err := decodeValue(v, p.Elem(), true); err != nil {
			return err
		}
		fv.Set(p)
		return nil
	case reflect.Struct:
		ty := v.Type()
		if !ty.IsObjectType() && !ty.IsMapType() {
			return fmt.Errorf("want an object (a node), got %s", ty.FriendlyName())
		}
		if ty.IsObjectType() && ty.HasAttribute("properties") && ty.HasAttribute("name") {
			v = v.GetAttr("properties") // a node: its properties
			if v.IsNull() || !v.IsKnown() {
				return nil
			}
		}
		get := func(name string) (cty.Value, bool) {
			switch {
			case v.Type().IsObjectType() && v.Type().HasAttribute(name):
				return v.GetAttr(name), true
			case v.Type().IsMapType() && v.HasIndex(cty.StringVal(name)).True():
				return v.Index(cty.StringVal(name)), true
			}
			return cty.NilVal, false
		}
		return decodeStruct(get, fv, "")
	case reflect.String:
		s, err := convert.Convert(v, cty.String)
		if err != nil {
			return fmt.Errorf("want a string, got %s", v.Type().FriendlyName())
		}
		fv.SetString(s.AsString())
		return nil
	case reflect.Bool:
		b, err := convert.Convert(v, cty.Bool)
		if err != nil {
			return fmt.Errorf("want true or false: %v", err)
		}
		fv.SetBool(b.True())
		return nil
	case reflect.Float32, reflect.Float64:
		n, err := number(v)
		if err != nil {
			return err
		}
		f, _ := n.Float64()
		fv.SetFloat(f)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := number(v)
		if err != nil {
			return err
		}
		i, acc := n.Int64()
		if acc != big.Exact || fv.OverflowInt(i) {
			return fmt.Errorf("want a whole number, got %s", n.Text('g', -1))
		}
		fv.SetInt(i)
		return nil
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("cannot decode into %s", fv.Type())
		}
		var items []string
		if v.Type() == cty.String {
			for _, s := range strings.Split(v.AsString(), ",") {
				if s = strings.TrimSpace(s); s != "" {
					items = append(items, s)
				}
			}
		} else {
			l, err := convert.Convert(v, cty.List(cty.String))
			if err != nil {
				return fmt.Errorf("want a list of strings: %v", err)
			}
			for it := l.ElementIterator(); it.Next(); {
				_, e := it.Element()
				if !e.IsNull() {
					items = append(items, e.AsString())
				}
			}
		}
		fv.Set(reflect.ValueOf(items))
		return nil
	}
	return fmt.Errorf("cannot decode into %s", fv.Type())
}

// number converts a value to a number; an empty string is zero.
func number(v cty.Value) (*big.Float, error) {
	if v.Type() == cty.String && strings.TrimSpace(v.AsString()) == "" {
		return new(big.Float), nil
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil {
		if v.Type() == cty.String {
			return nil, fmt.Errorf("%q is not a number", v.AsString())
		}
		return nil, fmt.Errorf("want a number, got %s", v.Type().FriendlyName())
	}
	return n.AsBigFloat(), nil
}
