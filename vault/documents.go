package vault

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tokenvault/tokenvault/vault/fieldpolicy"
)

// MaxRecordDocs bounds the documents of one record call.
const MaxRecordDocs = 1000

// RecordFailure is one field of a record call that could not be (de)tokenized, named by its
// document index and JSON path, never its value.
type RecordFailure struct {
	Doc  int
	Path string
	Err  error // wraps ErrInvalidValue, ErrNotFound, … (the item's error), or fieldpolicy.ErrWrongType
}

// CompilePolicy parses and compiles a field policy (YAML or JSON "path: template").
func CompilePolicy(data []byte) (*fieldpolicy.Compiled, error) {
	p, err := fieldpolicy.ParsePolicy(data)
	if err != nil {
		return nil, err
	}
	return p.Compile()
}

func (v *Vault) checkRecordCall(docs []json.RawMessage) error {
	if len(docs) == 0 {
		return ErrEmptyBatch
	}
	if len(docs) > MaxRecordDocs {
		return fmt.Errorf("%w: at most %d documents a call", ErrBatchTooLarge, MaxRecordDocs)
	}
	return nil
}

// TokenizeRecords tokenizes the fields the policy selects in each document, in domain. A
// document any of whose selected fields failed is withheld (nil in the result): returning it
// would send the untokenized value on. Failures name the document and the JSON path.
func (v *Vault) TokenizeRecords(ctx context.Context, policy *fieldpolicy.Compiled, domain string, docs []json.RawMessage) ([]json.RawMessage, []RecordFailure, error) {
	out, fails, err := v.recordCall(policy, docs, splitScan(func(fields []fieldpolicy.Field) ([]string, []error, error) {
		items := make([]TokenizeItem, len(fields))
		for i, f := range fields {
			items[i] = TokenizeItem{Value: f.Value, Template: f.Template, Domain: domain}
		}
		res, err := v.Tokenize(ctx, items)
		return outcomes(res, err, func(r TokenizeResult) (string, error) { return r.Token, r.Err })
	}, func(fields []fieldpolicy.Field) ([]string, []error, error) {
		items := make([]TextItem, len(fields))
		for i, f := range fields {
			items[i] = TextItem{Text: f.Value, Domain: domain}
		}
		res, err := v.TokenizeText(ctx, items)
		return outcomes(res, err, func(r TextResult) (string, error) { return r.Text, r.Err })
	}))
	if err != nil {
		return nil, nil, err
	}
	for _, f := range fails {
		out[f.Doc] = nil // never pass on a document with a clear value in it
	}
	return out, fails, nil
}

// DetokenizeRecords reveals the tokens at the policy's paths in each document (an internal
// reveal: audited like Detokenize, with purpose). A field that fails keeps its token.
func (v *Vault) DetokenizeRecords(ctx context.Context, policy *fieldpolicy.Compiled, domain, purpose string, docs []json.RawMessage) ([]json.RawMessage, []RecordFailure, error) {
	return v.recordCall(policy, docs, splitScan(func(fields []fieldpolicy.Field) ([]string, []error, error) {
		items := make([]TokenRef, len(fields))
		for i, f := range fields {
			items[i] = TokenRef{Token: f.Value, Template: f.Template, Domain: domain}
		}
		res, err := v.Detokenize(ctx, purpose, items)
		return outcomes(res, err, func(r DetokenizeResult) (string, error) { return r.Value, r.Err })
	}, func(fields []fieldpolicy.Field) ([]string, []error, error) {
		items := make([]TextDetokenizeItem, len(fields))
		for i, f := range fields {
			items[i] = TextDetokenizeItem{Text: f.Value, Domain: domain}
		}
		res, _, err := v.DetokenizeText(ctx, purpose, items)
		return outcomes(res, err, func(r TextDetokenizeResult) (string, error) { return r.Text, r.Err })
	}))
}

// splitScan returns a batch transform that sends the fields of "scan" rules (free text) to
// scan and the others to tmpl, and merges the results in field order.
func splitScan(tmpl, scan func([]fieldpolicy.Field) ([]string, []error, error)) func([]fieldpolicy.Field) ([]string, []error, error) {
	return func(fields []fieldpolicy.Field) ([]string, []error, error) {
		var plain, text []fieldpolicy.Field
		var plainAt, textAt []int
		for i, f := range fields {
			if f.Template == fieldpolicy.Scan {
				text, textAt = append(text, f), append(textAt, i)
			} else {
				plain, plainAt = append(plain, f), append(plainAt, i)
			}
		}
		vals, errs := make([]string, len(fields)), make([]error, len(fields))
		for _, part := range []struct {
			fs []fieldpolicy.Field
			at []int
			do func([]fieldpolicy.Field) ([]string, []error, error)
		}{{plain, plainAt, tmpl}, {text, textAt, scan}} {
			if len(part.fs) == 0 {
				continue
			}
			v, e, err := part.do(part.fs)
			if err != nil {
				return nil, nil, err
			}
			for k, i := range part.at {
				vals[i], errs[i] = v[k], e[k]
			}
		}
		return vals, errs, nil
	}
}

// recordCall extracts the policy's fields, transforms them in batches of at most MaxBatch with
// do, and puts the results back; a failed field keeps its original text and is reported.
func (v *Vault) recordCall(policy *fieldpolicy.Compiled, docs []json.RawMessage, do func([]fieldpolicy.Field) ([]string, []error, error)) ([]json.RawMessage, []RecordFailure, error) {
	if err := v.checkRecordCall(docs); err != nil {
		return nil, nil, err
	}
	fields, ferrs, err := policy.Extract(docs)
	if err != nil {
		return nil, nil, err
	}
	var fails []RecordFailure
	for _, fe := range ferrs {
		fails = append(fails, RecordFailure{Doc: fe.Doc, Path: fe.Path, Err: fmt.Errorf("%w: %s", ErrInvalidValue, fe.Reason())})
	}
	repl := make([]string, len(fields))
	for start := 0; start < len(fields); start += MaxBatch {
		end := min(start+MaxBatch, len(fields))
		vals, errs, err := do(fields[start:end])
		if err != nil {
			return nil, nil, err
		}
		for i := range vals {
			f := fields[start+i]
			if errs[i] != nil {
				fails = append(fails, RecordFailure{Doc: f.Doc, Path: f.Path, Err: errs[i]})
				repl[start+i] = f.Value
				continue
			}
			repl[start+i] = vals[i]
		}
	}
	out, err := policy.Replace(docs, fields, repl)
	if err != nil {
		return nil, nil, err
	}
	return out, fails, nil
}

// outcomes splits a batch call's results into replacement strings and per-field errors.
func outcomes[R any](res []R, err error, of func(R) (string, error)) ([]string, []error, error) {
	if err != nil {
		return nil, nil, err
	}
	vals, errs := make([]string, len(res)), make([]error, len(res))
	for i, r := range res {
		vals[i], errs[i] = of(r)
	}
	return vals, errs, nil
}
