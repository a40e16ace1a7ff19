package server

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// messageOf returns a message of the type v decodes into: v itself, or for the pointer to a
// message field that the gateway passes for a body field (**T), a new T.
func messageOf(v any) proto.Message {
	if m, ok := v.(proto.Message); ok {
		return m
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Pointer {
		return nil
	}
	m, _ := reflect.New(rv.Elem().Type().Elem()).Interface().(proto.Message)
	return m
}

// expandEnumShortNames rewrites the short enum names the docs use ("deterministic",
// "invalid", "masked") into the names protojson accepts (TEMPLATE_MODE_DETERMINISTIC, …), for
// every enum field of m's message type in the JSON document data, however deep. It reports
// whether it changed anything. The full names and numbers keep working; a string that is no
// value of the enum, short or long, is left for protojson to refuse.
func expandEnumShortNames(data []byte, m proto.Message) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	if !expandMessage(doc, m.ProtoReflect().Descriptor()) {
		return nil, false
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, false
	}
	return out, true
}

func expandMessage(v any, md protoreflect.MessageDescriptor) bool {
	obj, ok := v.(map[string]any)
	if !ok {
		return false
	}
	changed := false
	fields := md.Fields()
	for key, val := range obj {
		fd := fields.ByJSONName(key)
		if fd == nil {
			fd = fields.ByName(protoreflect.Name(key))
		}
		if fd == nil {
			continue
		}
		switch {
		case fd.IsMap():
			if m, ok := val.(map[string]any); ok {
				for k, mv := range m {
					if nv, ok := expandValue(mv, fd.MapValue()); ok {
						m[k], changed = nv, true
					}
				}
			}
		case fd.IsList():
			if l, ok := val.([]any); ok {
				for i, lv := range l {
					if nv, ok := expandValue(lv, fd); ok {
						l[i], changed = nv, true
					}
				}
			}
		default:
			if nv, ok := expandValue(val, fd); ok {
				obj[key], changed = nv, true
			}
		}
	}
	return changed
}

// expandValue returns the replacement of one value of field fd, if it has one.
func expandValue(v any, fd protoreflect.FieldDescriptor) (any, bool) {
	switch fd.Kind() {
	case protoreflect.EnumKind:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		return expandEnum(s, fd.Enum())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return v, expandMessage(v, fd.Message())
	}
	return nil, false
}

var shortEnumRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,62}$`)

// expandEnum maps a short name ("masked") to the enum value sharing the type's prefix
// (REVEAL_MASKED).
func expandEnum(s string, ed protoreflect.EnumDescriptor) (string, bool) {
	values := ed.Values()
	if values.ByName(protoreflect.Name(s)) != nil || !shortEnumRE.MatchString(s) || values.Len() == 0 {
		return "", false
	}
	// The prefix of the values: the zero value's name without its UNSPECIFIED.
	prefix, ok := strings.CutSuffix(string(values.Get(0).Name()), "UNSPECIFIED")
	if !ok {
		return "", false
	}
	name := prefix + strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if strings.HasSuffix(name, "_UNSPECIFIED") || values.ByName(protoreflect.Name(name)) == nil {
		return "", false
	}
	return name, true
}
