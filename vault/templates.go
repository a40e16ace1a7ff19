package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/tokenvault/tokenvault/vault/fieldpolicy"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

// TemplateInfo describes a template for listing.
type TemplateInfo struct {
	Definition template.Definition
	Builtin    bool
}

// lookupTemplate returns a built-in or custom template by name.
func (v *Vault) lookupTemplate(name string) (template.Template, bool) {
	if t, ok := template.Builtin(name); ok {
		return t, true
	}
	if t, ok := v.templates.Load(name); ok {
		return t.(template.Template), true
	}
	return nil, false
}

func (v *Vault) resolveTemplates(_ context.Context, items []TokenizeItem) ([]template.Template, error) {
	out := make([]template.Template, len(items))
	var last template.Template
	for i, it := range items {
		if last != nil && last.Name() == it.Template {
			out[i] = last
			continue
		}
		t, ok := v.lookupTemplate(it.Template)
		if !ok {
			return nil, fmt.Errorf("%w %q (item %d, counting from 1)", ErrUnknownTemplate, it.Template, i+1)
		}
		out[i], last = t, t
	}
	return out, nil
}

func (v *Vault) loadTemplates(ctx context.Context) error {
	var defs []template.Definition
	err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketTemplates, nil, nil, func(_, val []byte) error {
			var d template.Definition
			if err := json.Unmarshal(val, &d); err != nil {
				return fmt.Errorf("vault: stored template is malformed: %w", err)
			}
			defs = append(defs, d)
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, d := range defs {
		t, err := template.New(d)
		if err != nil {
			return fmt.Errorf("vault: stored template %q no longer valid: %w", d.Name, err)
		}
		v.templates.Store(d.Name, t)
	}
	return nil
}

// CreateTemplate validates and stores a custom template. It returns an error wrapping
// ErrInvalidTemplate for an unusable definition and ErrTemplateExists when the name is taken.
func (v *Vault) CreateTemplate(ctx context.Context, def template.Definition) (TemplateInfo, error) {
	t, err := template.New(def)
	if err != nil {
		return TemplateInfo{}, err
	}
	norm := t.Definition()
	if _, ok := template.Builtin(norm.Name); ok {
		return TemplateInfo{}, fmt.Errorf("%w: %q is a built-in template", ErrTemplateExists, norm.Name)
	}
	if norm.Name == fieldpolicy.Scan {
		return TemplateInfo{}, fmt.Errorf("%w: %q is reserved (field policies use it for free text)", ErrTemplateExists, norm.Name)
	}
	blob, err := json.Marshal(norm)
	if err != nil {
		return TemplateInfo{}, err
	}
	v.tmplMu.Lock()
	defer v.tmplMu.Unlock()
	var exists bool
	ev := v.newEvent(ctx, "CreateTemplate")
	ev.Target, ev.Outcome, ev.Templates = norm.Name, OutcomeAllowed, []string{norm.Name}
	ev.Reason = "base " + norm.Base
	_, err = v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		exists = tx.Get(bucketTemplates, []byte(norm.Name)) != nil
		if exists {
			return errSkipAudit
		}
		return tx.Put(bucketTemplates, []byte(norm.Name), blob)
	})
	if err != nil {
		return TemplateInfo{}, fmt.Errorf("storing template: %w", err)
	}
	if exists {
		return TemplateInfo{}, fmt.Errorf("%w: %q", ErrTemplateExists, norm.Name)
	}
	v.templates.Store(norm.Name, t)
	return TemplateInfo{Definition: norm}, nil
}

// ListTemplates returns the built-in templates, then the custom ones sorted by name.
func (v *Vault) ListTemplates(_ context.Context) []TemplateInfo {
	var out []TemplateInfo
	for _, n := range template.BuiltinNames() {
		t, _ := template.Builtin(n)
		out = append(out, TemplateInfo{Definition: t.Definition(), Builtin: true})
	}
	var custom []TemplateInfo
	v.templates.Range(func(_, val any) bool {
		custom = append(custom, TemplateInfo{Definition: val.(template.Template).Definition()})
		return true
	})
	sort.Slice(custom, func(i, j int) bool { return custom[i].Definition.Name < custom[j].Definition.Name })
	return append(out, custom...)
}
