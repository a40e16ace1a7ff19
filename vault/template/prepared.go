package template

import (
	"fmt"
	"io"
)

// Prepared is one value validated and planned once, for the vault's per-item work: its free
// space and any number of candidates, without parsing the value again for each (Check,
// FreeSpaceOf and Candidate each plan the value from scratch). Its answers are exactly those
// of the Template methods for the same value.
//
// A Prepared holds pooled scratch that contains the value: call Release once done with it
// (after Release it must not be used), and soon: plans held for long (one per item of a
// large batch, across many concurrent batches) empty the pool, and each new plan grows its
// scratch again. It is not safe for concurrent use.
type Prepared struct {
	c     *common // nil for a Template this package did not build
	p     *plan
	t     Template
	value string
}

// Prepare validates value for t, as t.Check does (same error), and plans it for FreeSpace
// and Candidate. After an error there is nothing to release.
func Prepare(t Template, value string) (Prepared, error) {
	cp, ok := t.(interface{ core() *common })
	if !ok {
		// Not built by New or Builtin: answer through the interface.
		if err := t.Check(value); err != nil {
			return Prepared{}, err
		}
		return Prepared{t: t, value: value}, nil
	}
	c := cp.core()
	p := getPlan(c.self, false)
	if err := c.self.plan(p, value); err != nil {
		p.releaseFailed()
		return Prepared{}, err
	}
	return Prepared{c: c, p: p, t: t, value: value}, nil
}

// FreeSpace is FreeSpaceOf for the prepared value.
func (pv *Prepared) FreeSpace() (float64, error) {
	if pv.c == nil {
		return pv.t.FreeSpaceOf(pv.value)
	}
	return pv.p.log10, nil
}

// Candidate is Candidate for the prepared value.
func (pv *Prepared) Candidate(k Keys, attempt int, rnd io.Reader) (string, error) {
	if pv.c == nil {
		return pv.t.Candidate(k, pv.value, attempt, rnd)
	}
	return pv.c.candidate(pv.p, k, attempt, rnd)
}

// Release clears the scratch holding the value and returns it to the pool. It is a no-op on
// a zero or already released Prepared.
func (pv *Prepared) Release() {
	if pv.p != nil {
		pv.p.release()
	}
	*pv = Prepared{}
}

// candidate is candidate number attempt of the value planned in p (a full plan).
func (c *common) candidate(p *plan, k Keys, attempt int, rnd io.Reader) (string, error) {
	if attempt < 0 {
		return "", fmt.Errorf("template %s: negative attempt", c.def.Name)
	}
	tok, err := p.generate(c.def.Mode, k, attempt, rnd)
	if err != nil {
		return "", fmt.Errorf("template %s: %w", c.def.Name, err)
	}
	return tok, nil
}
