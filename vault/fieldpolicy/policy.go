package fieldpolicy

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Limits. A document's size is bounded by the caller (the vault's request size limit).
const (
	// MaxDepth is the deepest nesting of objects and arrays a document may have (the
	// outermost container is depth 1), and the most steps a path may have.
	MaxDepth = 64
	// MaxFields is the most values one Extract or Replace call may select in a batch,
	// counting FieldErrors.
	MaxFields = 100_000
	// MaxRules is the most rules a policy may have.
	MaxRules = 1000
	// MaxPathLen is the longest path, in bytes.
	MaxPathLen = 1024
)

// Scan is the template name of a rule whose strings are free text: the vault scans them for
// personal data (cards, SSNs, e-mails, phones, IBANs, IPs) and tokenizes what it finds in
// place, instead of tokenizing the whole string with one template. No template may be named
// so.
const Scan = "scan"

// Policy maps JSON paths to template names. Rule order is kept: where several rules select
// the same value, the first wins.
type Policy struct {
	Rules []Rule
}

// Rule selects the string values at Path for the template named Template.
type Rule struct {
	Path     string // e.g. $.items[*].note
	Template string // e.g. opaque
}

// ParsePolicy parses a YAML mapping of path to template name, in order, e.g.
//
//	$.customer.email: email
//	$.payment.card: pan
//	$.items[*].note: opaque
//
// A JSON object is valid YAML and is accepted too. Every path and template name is
// validated as by Compile; errors name the line. Whether the templates exist is for the
// caller to check.
func ParsePolicy(data []byte) (Policy, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Policy{}, policyErr("not valid YAML or JSON: %v", err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == 0 || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return Policy{}, policyErr("the policy is empty")
	}
	if root.Kind != yaml.MappingNode {
		return Policy{}, policyErr("line %d: the policy must be a mapping of JSON path to template name", root.Line)
	}
	var p Policy
	lines := map[string]int{}
	var ruleLines []int
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return Policy{}, policyErr("line %d: a key must be a JSON path such as $.customer.email", k.Line)
		}
		if prev, dup := lines[k.Value]; dup {
			return Policy{}, policyErr("line %d: path %q is already mapped on line %d", k.Line, k.Value, prev)
		}
		lines[k.Value] = k.Line
		if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
			return Policy{}, policyErr("line %d: path %q: the value must be a template name", v.Line, k.Value)
		}
		r := Rule{Path: k.Value, Template: v.Value}
		if _, err := r.check(k.Line); err != nil {
			return Policy{}, err
		}
		p.Rules = append(p.Rules, r)
		ruleLines = append(ruleLines, k.Line)
	}
	if _, err := p.compile(ruleLines); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// check validates the rule and returns its parsed path; line, when not 0, is the rule's
// line in the policy file, for errors.
func (r Rule) check(line int) ([]step, error) {
	steps, err := parsePath(r.Path)
	if err != nil {
		err.(*PathError).Line = line
		return nil, err
	}
	if !validTemplateName(r.Template) {
		at := ""
		if line > 0 {
			at = fmt.Sprintf("line %d: ", line)
		}
		return nil, policyErr("%spath %q: template name %q is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$", at, r.Path, r.Template)
	}
	return steps, nil
}

func validTemplateName(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || isDigit(c) || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Compiled is a validated policy, ready to apply. It is immutable and safe for concurrent
// use.
type Compiled struct {
	rules     []Rule
	root      *node
	maxFields int
}

// node is a node of the trie of rule paths: the rules that share a prefix of steps share
// the nodes for it.
type node struct {
	rule      int // the rule whose path ends here, or -1
	members   map[string]*node
	indexes   map[int]*node
	anyMember *node
	anyIndex  *node
	objRule   int // the first rule that needs an object here (a member step follows), or -1
	arrRule   int // the first rule that needs an array here (an index step follows), or -1
}

func newNode() *node { return &node{rule: -1, objRule: -1, arrRule: -1} }

// childNode returns the node at k in *children, adding a new one (and the map) if missing.
func childNode[K comparable](children *map[K]*node, k K) *node {
	if *children == nil {
		*children = map[K]*node{}
	}
	m := (*children)[k]
	if m == nil {
		m = newNode()
		(*children)[k] = m
	}
	return m
}

// Compile validates the policy and builds its matcher. It refuses an empty policy, more
// than MaxRules rules, an invalid path or template name, and two rules with the same path
// however spelled ($.a.b, $['a'].b, $["a"]['b']). Rules whose paths differ but can select
// the same value ($.items[*].card, $.items[0].card) are allowed: the first rule wins.
func (p Policy) Compile() (*Compiled, error) { return p.compile(nil) }

// compile is Compile; lines, when not nil, are the rules' lines in the policy file, for
// errors.
func (p Policy) compile(lines []int) (*Compiled, error) {
	at := func(ri int) string {
		if lines == nil {
			return ""
		}
		return fmt.Sprintf("line %d: ", lines[ri])
	}
	if len(p.Rules) == 0 {
		return nil, policyErr("the policy has no rules")
	}
	if len(p.Rules) > MaxRules {
		return nil, policyErr("%d rules; at most %d are allowed", len(p.Rules), MaxRules)
	}
	c := &Compiled{rules: append([]Rule(nil), p.Rules...), root: newNode(), maxFields: MaxFields}
	for ri, r := range c.rules {
		steps, err := r.check(0)
		if err != nil {
			return nil, err
		}
		n := c.root
		for _, s := range steps {
			var next **node
			switch s.kind {
			case stepMember:
				m := childNode(&n.members, s.name)
				next = &m
			case stepIndex:
				m := childNode(&n.indexes, s.index)
				next = &m
			case stepAnyMember:
				next = &n.anyMember
			case stepAnyIndex:
				next = &n.anyIndex
			}
			if *next == nil {
				*next = newNode()
			}
			if s.kind == stepMember || s.kind == stepAnyMember {
				if n.objRule < 0 {
					n.objRule = ri
				}
			} else if n.arrRule < 0 {
				n.arrRule = ri
			}
			n = *next
		}
		if n.rule >= 0 {
			return nil, policyErr("%spaths %q and %q select the same values; keep one rule", at(ri), c.rules[n.rule].Path, r.Path)
		}
		n.rule = ri
	}
	return c, nil
}
