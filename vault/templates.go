package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
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

// Custom templates are kept in memory once read. A template created on another replica
// sharing the store is not in this vault's memory yet: a lookup that misses reads it from the
// store (one read) and keeps it, so a template is usable on every replica as soon as its
// creation has committed. Templates are never changed or deleted, so what memory holds is
// never stale. Lookups inside a store transaction read through that transaction
// (lookupTemplateTx).

// lookupTemplate returns a built-in or custom template by name; a store failure reads as
// absent (findTemplate reports it).
func (v *Vault) lookupTemplate(ctx context.Context, name string) (template.Template, bool) {
	t, ok, err := v.findTemplate(ctx, name)
	if err != nil {
		v.log.Error("reading a custom template failed", slog.String("error", err.Error()))
	}
	return t, ok
}

// findTemplate returns a built-in or custom template by name.
func (v *Vault) findTemplate(ctx context.Context, name string) (template.Template, bool, error) {
	if t, ok := v.knownTemplate(name); ok {
		return t, true, nil
	}
	var blob []byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		blob = bytes.Clone(tx.Get(bucketTemplates, []byte(name)))
		return nil
	}); err != nil || blob == nil {
		return nil, false, err
	}
	t, ok := v.keepTemplate(blob)
	return t, ok, nil
}

// lookupTemplateTx is lookupTemplate inside a store transaction.
func (v *Vault) lookupTemplateTx(tx store.Tx, name string) (template.Template, bool) {
	if t, ok := v.knownTemplate(name); ok {
		return t, true
	}
	if blob := tx.Get(bucketTemplates, []byte(name)); blob != nil {
		return v.keepTemplate(blob)
	}
	return nil, false
}

// knownTemplate returns a built-in template, or a custom one held in memory.
func (v *Vault) knownTemplate(name string) (template.Template, bool) {
	if t, ok := template.Builtin(name); ok {
		return t, true
	}
	if t, ok := v.templates.Load(name); ok {
		return t.(template.Template), true
	}
	return nil, false
}

// keepTemplate parses a stored template definition and keeps it in memory.
func (v *Vault) keepTemplate(blob []byte) (template.Template, bool) {
	var d template.Definition
	if err := json.Unmarshal(blob, &d); err != nil {
		return nil, false
	}
	t, err := template.New(d)
	if err != nil {
		return nil, false
	}
	v.templates.Store(d.Name, t)
	return t, true
}

func (v *Vault) resolveTemplates(ctx context.Context, items []TokenizeItem) ([]template.Template, error) {
	out := make([]template.Template, len(items))
	var last template.Template
	for i, it := range items {
		if last != nil && last.Name() == it.Template {
			out[i] = last
			continue
		}
		t, ok, err := v.findTemplate(ctx, it.Template)
		if err != nil {
			return nil, err
		}
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

// ListTemplates returns the built-in templates, then the custom ones sorted by name (read
// again from the store: with those other replicas created).
func (v *Vault) ListTemplates(ctx context.Context) []TemplateInfo {
	if err := v.loadTemplates(ctx); err != nil {
		v.log.Error("reading custom templates failed; listing those known here", slog.String("error", err.Error()))
	}
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
