package vault

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/textscan"
)

// MaxTextBytes bounds one text of TokenizeText and DetokenizeText.
const MaxTextBytes = 1 << 20

// textTemplates maps each entity the scanner finds to the built-in template its tokens
// use. IP addresses have no format-preserving template: they become opaque tokens.
var textTemplates = map[textscan.Entity]string{
	textscan.PAN:   "pan",
	textscan.SSN:   "ssn",
	textscan.Email: "email",
	textscan.Phone: "phone",
	textscan.IBAN:  "iban",
	textscan.IP:    "opaque",
}

// TextItem is one text to scan (TokenizeText).
type TextItem struct {
	Text          string
	Domain        string   // empty: DefaultDomain
	Entities      []string // pan, ssn, email, phone, iban, ip; empty: all
	Detect        bool     // only report findings: tokenize nothing, store nothing
	MinConfidence float64  // 0: textscan.DefaultMinConfidence
	DefaultRegion string   // for national phone numbers; empty: textscan.DefaultRegion
}

// TextFinding is one piece of personal data in a text. Start and End count Unicode code
// points of the input (End exclusive).
type TextFinding struct {
	Entity     string
	Start, End int
	Token      string // empty when detecting
	Confidence float64
}

// TextResult is the outcome of one text: the text with tokens in place of its findings (the
// input when detecting) and the findings, or Err (wrapping ErrInvalidValue or another
// item error). A text any of whose findings failed to tokenize is withheld (Err set):
// returning it would pass on a clear value.
type TextResult struct {
	Text     string
	Findings []TextFinding
	Err      error
}

// checkText validates one text of a text call.
func checkText(text string) error {
	switch {
	case len(text) > MaxTextBytes:
		return fmt.Errorf("%w: text: at most %d bytes", ErrInvalidValue, MaxTextBytes)
	case !utf8.ValidString(text):
		return fmt.Errorf("%w: text: not valid UTF-8", ErrInvalidValue)
	}
	return nil
}

// scannerFor builds the item's scanner; its errors are item errors.
func scannerFor(it TextItem) (*textscan.Scanner, error) {
	var set textscan.Set
	for _, name := range it.Entities {
		e, ok := textscan.ParseEntity(name)
		if !ok {
			return nil, fmt.Errorf("%w: unknown entity (want pan, ssn, email, phone, iban or ip)", ErrInvalidValue)
		}
		set |= textscan.SetOf(e)
	}
	s, err := textscan.New(textscan.Options{Entities: set, MinConfidence: it.MinConfidence, DefaultRegion: it.DefaultRegion})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return s, nil
}

// TokenizeText finds personal data in each text and, unless the item only detects, replaces
// it with tokens of the item's domain (one Tokenize per MaxBatch findings, audited as such).
// Detecting stores nothing and writes no audit event. A whole-call error means nothing was
// returned; per-text problems are the result's Err.
func (v *Vault) TokenizeText(ctx context.Context, items []TextItem) ([]TextResult, error) {
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	results := make([]TextResult, len(items))
	found := make([][]textscan.Finding, len(items))
	type ref struct{ item, finding int }
	var toks []TokenizeItem
	var refs []ref
	for i, it := range items {
		if err := checkText(it.Text); err != nil {
			results[i].Err = err
			continue
		}
		s, err := scannerFor(it)
		if err != nil {
			results[i].Err = err
			continue
		}
		found[i] = s.Scan(it.Text)
		if it.Detect {
			continue
		}
		for k, f := range found[i] {
			toks = append(toks, TokenizeItem{Value: it.Text[f.Start:f.End], Template: textTemplates[f.Entity], Domain: it.Domain})
			refs = append(refs, ref{i, k})
		}
	}
	tokens := make([][]string, len(items))
	for i := range items {
		tokens[i] = make([]string, len(found[i]))
	}
	for start := 0; start < len(toks); start += MaxBatch {
		end := min(start+MaxBatch, len(toks))
		res, err := v.Tokenize(ctx, toks[start:end])
		if err != nil {
			return nil, err
		}
		for k, r := range res {
			rf := refs[start+k]
			if r.Err != nil {
				if results[rf.item].Err == nil {
					results[rf.item].Err = fmt.Errorf("finding %d (%s): %w", rf.finding, found[rf.item][rf.finding].Entity, r.Err)
				}
				continue
			}
			tokens[rf.item][rf.finding] = r.Token
		}
	}
	for i, it := range items {
		if results[i].Err != nil {
			continue
		}
		results[i] = buildText(it.Text, found[i], tokens[i], it.Detect)
	}
	return results, nil
}

// buildText writes the result of one text: its findings with code-point offsets and, when
// tokenizing, the text with each finding replaced by its token (the rest byte for byte).
func buildText(text string, fs []textscan.Finding, tokens []string, detect bool) TextResult {
	out := TextResult{Text: text, Findings: make([]TextFinding, len(fs))}
	var b strings.Builder
	if !detect {
		b.Grow(len(text))
	}
	pos, cp := 0, 0 // byte offset and its code-point offset
	for k, f := range fs {
		start := cp + utf8.RuneCountInString(text[pos:f.Start])
		end := start + utf8.RuneCountInString(text[f.Start:f.End])
		out.Findings[k] = TextFinding{Entity: f.Entity.String(), Start: start, End: end, Confidence: f.Confidence}
		if !detect {
			b.WriteString(text[pos:f.Start])
			b.WriteString(tokens[k])
			out.Findings[k].Token = tokens[k]
		}
		pos, cp = f.End, end
	}
	if !detect {
		b.WriteString(text[pos:])
		out.Text = b.String()
	}
	return out
}

// TextDetokenizeItem is one text with tokens (DetokenizeText).
type TextDetokenizeItem struct {
	Text   string
	Domain string // empty: DefaultDomain
}

// TextDetokenizeResult is the outcome of one text: the text with the domain's tokens
// replaced by their values and how many were, or Err.
type TextDetokenizeResult struct {
	Text     string
	Replaced int
	Err      error
}

// DetokenizeText finds the live tokens of each item's domain in its text (at the places
// textscan.Scanner.Tokens names, looked up in one read transaction) and reveals them through
// Detokenize, so every reveal is checked and audited as Detokenize's are (with purpose; the
// audit event has counts and token fingerprints, never values or tokens). Anything that is
// not a live token of the domain, or that Detokenize does not reveal (out of the caller's
// scope), is left as it is, without an error: the result says only how many tokens were
// replaced. Values come as Detokenize gives them (masked for a caller whose scope says so).
// The reveals are returned too (for canary alerts).
func (v *Vault) DetokenizeText(ctx context.Context, purpose string, items []TextDetokenizeItem) ([]TextDetokenizeResult, []DetokenizeResult, error) {
	if len(items) == 0 {
		return nil, nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, nil, ErrBatchTooLarge
	}
	results := make([]TextDetokenizeResult, len(items))
	scanner, err := textscan.New(textscan.Options{})
	if err != nil {
		return nil, nil, err
	}
	spans := make([][]textscan.Span, len(items))
	for i, it := range items {
		if results[i].Err = checkText(it.Text); results[i].Err == nil {
			spans[i] = scanner.Tokens(it.Text)
		}
	}
	// Keep, in each text, the first live token at each place (longest first), without overlaps.
	hits := make([][]textscan.Span, len(items))
	now := v.now().Unix()
	err = v.store.View(ctx, func(tx store.Tx) error {
		// Every candidate span's record in one batch read, then the choice among them.
		var keys [][]byte
		for i, it := range items {
			for _, sp := range spans[i] {
				keys = append(keys, recordKey(DomainOr(it.Domain), it.Text[sp.Start:sp.End]))
			}
		}
		raws := readRecords(tx, keys, nil)
		n := 0
		for i, it := range items {
			hits[i] = hits[i][:0]
			end := 0
			for _, sp := range spans[i] {
				rr := raws[n]
				n++
				if sp.Start < end {
					continue
				}
				if _, err := v.checkRecord(rr, DomainOr(it.Domain), "", now); err != nil {
					continue
				}
				hits[i] = append(hits[i], sp)
				end = sp.End
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading tokens: %w", err)
	}
	type ref struct{ item, hit int }
	var toks []TokenRef
	var refs []ref
	for i, it := range items {
		for k, sp := range hits[i] {
			toks = append(toks, TokenRef{Token: it.Text[sp.Start:sp.End], Domain: it.Domain})
			refs = append(refs, ref{i, k})
		}
	}
	values := make([][]string, len(items))
	ok := make([][]bool, len(items))
	for i := range items {
		values[i], ok[i] = make([]string, len(hits[i])), make([]bool, len(hits[i]))
	}
	var reveals []DetokenizeResult
	for start := 0; start < len(toks); start += MaxBatch {
		end := min(start+MaxBatch, len(toks))
		// The same reveal path as the token service's Detokenize: its checks and audit apply.
		res, err := v.Detokenize(ctx, purpose, toks[start:end])
		if err != nil {
			return nil, nil, err
		}
		reveals = append(reveals, res...)
		for k, r := range res {
			rf := refs[start+k]
			// A token Detokenize does not reveal (gone since the lookup, outside the caller's
			// scope, failing its integrity check) stays as it is, like any other text.
			if r.Err == nil {
				values[rf.item][rf.hit], ok[rf.item][rf.hit] = r.Value, true
			}
		}
	}
	for i, it := range items {
		if results[i].Err != nil {
			continue
		}
		var b strings.Builder
		b.Grow(len(it.Text))
		pos := 0
		for k, sp := range hits[i] {
			if !ok[i][k] {
				continue
			}
			b.WriteString(it.Text[pos:sp.Start])
			b.WriteString(values[i][k])
			pos = sp.End
			results[i].Replaced++
		}
		b.WriteString(it.Text[pos:])
		results[i].Text = b.String()
	}
	return results, reveals, nil
}
