package cluster

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pos is a place in the spec file.
type Pos struct{ Line, Col int }

// decoder fills Go values from a YAML node tree, reporting every unknown
// field and wrong type (not only the first) and recording the position of
// each field path, so semantic errors found later can point at their line too.
// yaml.v3's own strict decoding stops at the first unknown field and gives no
// columns, which is why this walks the nodes itself.
type decoder struct {
	errs Errors
	pos  map[string]Pos
	// nulls are the paths written with no value (`port:` or `port: null`),
	// which YAML reads as unset, as if the key were not there.
	nulls map[string]bool
}

// scalarDecoder is implemented by types that parse themselves from a scalar.
type scalarDecoder interface {
	decodeScalar(s string) error
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...)})
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		d.fail(n, path, "aliases are not supported; write the value out")
		return
	}
	if path != "" {
		d.pos[path] = Pos{n.Line, n.Column}
		if n.Tag == "!!null" {
			d.nulls[path] = true
		}
	}
	if v.Kind() == reflect.Pointer {
		if n.Tag == "!!null" {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a scalar, got %s", kindName(n))
			return
		}
		if err := sd.decodeScalar(n.Value); err != nil {
			d.fail(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if !d.collection(n, path, yaml.SequenceNode, "a list") {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if !d.collection(n, path, yaml.MappingNode, "a mapping") {
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.fail(k, p, "duplicate key")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, p)
			d.pos[p] = Pos{k.Line, k.Column}
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	case reflect.String, reflect.Int, reflect.Bool:
		d.decodeScalar(n, v, path)
	default:
		panic("cluster: no decoder for " + v.Type().String())
	}
}

// collection reports whether n is a node of kind (what, in an error) to
// decode: a null leaves the value as it is, a node of another kind fails.
func (d *decoder) collection(n *yaml.Node, path string, kind yaml.Kind, what string) bool {
	if n.Tag == "!!null" {
		return false
	}
	if n.Kind != kind {
		d.fail(n, path, "expected %s, got %s", what, kindName(n))
		return false
	}
	return true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if !d.collection(n, path, yaml.MappingNode, "a mapping") {
		return
	}
	t := v.Type()
	fields := map[string]int{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		fields[tag] = i
		names = append(names, tag)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		idx, ok := fields[k.Value]
		if !ok {
			sort.Strings(names)
			d.fail(k, p, "unknown field %q; valid fields here: %s", k.Value, strings.Join(names, ", "))
			continue
		}
		if seen[k.Value] {
			d.fail(k, p, "field given twice")
			continue
		}
		seen[k.Value] = true
		d.decode(val, v.Field(idx), p)
		// Point errors about a field at its key, where the eye looks first.
		d.pos[p] = Pos{k.Line, k.Column}
	}
}

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "expected %s, got %s", scalarKind(v.Kind()), kindName(n))
		return
	}
	if n.Tag == "!!null" {
		return
	}
	switch v.Kind() {
	case reflect.String:
		// Numbers and booleans are accepted as text (port names, versions
		// like 6.1), but text is never silently turned into a number.
		v.SetString(n.Value)
	case reflect.Int:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || n.Tag != "!!int" {
			d.fail(n, path, "expected an integer, got %q", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Bool:
		if n.Tag != "!!bool" {
			d.fail(n, path, "expected true or false, got %q", n.Value)
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	}
}

func scalarKind(k reflect.Kind) string {
	switch k {
	case reflect.Int:
		return "an integer"
	case reflect.Bool:
		return "true or false"
	}
	return "a string"
}
