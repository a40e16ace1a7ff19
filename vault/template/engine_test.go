package template

import (
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// TestPlanResetClears checks that a plan keeps nothing of a value once reset: every byte of
// its scratch, up to capacity, is zero again, after a valid value (plan and candidates) and
// after an invalid one.
func TestPlanResetClears(t *testing.T) {
	tms := goldenTemplates(t)
	for name, tm := range tms {
		pl := tm.(planner)
		k := newKeys("reset", name)
		p := &plan{}
		for i, v := range goldenValues(tm, 20) {
			p.t, p.light = pl, i%3 == 2
			if err := pl.plan(p, v); err != nil {
				p.scrubSpare()
			} else if !p.light {
				if _, err := p.generate(tm.Mode(), k, i%4, seeded(uint64(i))); err != nil {
					t.Fatalf("%s: generate(%q): %v", name, v, err)
				}
			}
			p.reset()
			if what := dirty(p); what != "" {
				t.Fatalf("%s: after %q, reset left %s", name, v, what)
			}
		}
	}
}

// dirty names a part of p that is not cleared.
func dirty(p *plan) string {
	zero := func(b []byte) bool { return !slices.ContainsFunc(b[:cap(b)], func(c byte) bool { return c != 0 }) }
	zeroInts := func(b []int) bool { return !slices.ContainsFunc(b[:cap(b)], func(c int) bool { return c != 0 }) }
	switch {
	case !zeroInts(p.in):
		return "in"
	case !zero(p.ctx):
		return "ctx"
	case !zero(p.buf):
		return "buf"
	case !zeroInts(p.offs):
		return "offs"
	case !zero(p.chars):
		return "chars"
	case slices.ContainsFunc(p.runes[:cap(p.runes)], func(r rune) bool { return r != 0 }):
		return "runes"
	case !zero(p.flags):
		return "flags"
	case !zeroInts(p.out):
		return "out"
	case !zero(p.tok):
		return "tok"
	case !zero(p.x):
		return "x"
	case !zero(p.tw):
		return "tw"
	case p.sum != [len(p.sum)]byte{} || p.rb != [len(p.rb)]byte{}:
		return "sum or rb"
	case len(p.radix)+len(p.pos)+len(p.alphas) != 0 || p.t != nil || p.alpha != "" || p.log10 != 0 || p.day0 != 0:
		return "fields"
	}
	return ""
}

// TestConcurrentPlans runs Check, FreeSpaceOf and Candidate from several goroutines
// over shared templates (and so shared pooled plans) and checks every result against a
// sequential run.
func TestConcurrentPlans(t *testing.T) {
	tms := goldenTemplates(t)
	type item struct {
		name, value string
		want        string
	}
	var items []item
	for name, tm := range tms {
		if tm.Mode() == Random {
			continue
		}
		for _, v := range goldenValues(tm, 15) {
			items = append(items, item{name, v, goldenLine(tm, v)})
		}
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			order := r.Perm(len(items))
			for _, i := range order {
				it := items[i]
				if got := goldenLine(tms[it.name], it.value); got != it.want {
					t.Errorf("goroutine %d: %s %q:\n got %s\nwant %s", g, it.name, it.value, got, it.want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestU128 checks the 128-bit arithmetic of mixed-radix domains against math/big.
func TestU128(t *testing.T) {
	max128 := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 128), big.NewInt(1))
	toBig := func(n u128) *big.Int {
		b := new(big.Int).SetUint64(n.hi)
		return b.Lsh(b, 64).Or(b, new(big.Int).SetUint64(n.lo))
	}
	r := rand.New(rand.NewPCG(1, 2))
	var cases []u128
	for _, c := range []u128{{0, 0}, {0, 1}, {0, 9}, {0, 10}, {0, 1<<64 - 1}, {1, 0}, {1, 1}, {1<<64 - 1, 1<<64 - 1},
		{0, 10_000_000_000_000_000_000}, {0, 9_999_999_999_999_999_999}} {
		cases = append(cases, c)
	}
	for range 2000 {
		n := u128{r.Uint64() >> r.IntN(64), r.Uint64()}
		if r.IntN(3) == 0 {
			n.hi = 0
		}
		cases = append(cases, n)
	}
	for _, n := range cases {
		nb := toBig(n)
		if got, want := string(n.appendDecimal(nil)), nb.String(); got != want {
			t.Fatalf("appendDecimal(%v) = %s, want %s", n, got, want)
		}
		if got, ok := parseDecimal128(nb.String()); !ok || got != n {
			t.Fatalf("parseDecimal128(%s) = %v, %v", nb, got, ok)
		}
		if n != (u128{}) {
			if got, want := toBig(n.sub1()), new(big.Int).Sub(nb, big.NewInt(1)); got.Cmp(want) != 0 {
				t.Fatalf("sub1(%v) = %v, want %v", n, got, want)
			}
		}
		for _, m := range []uint64{1, 2, 10, 26, 36, 62, 1_000_003, 1<<64 - 1, r.Uint64() | 1} {
			q, rem := n.divMod(m)
			wq, wr := new(big.Int).QuoRem(nb, new(big.Int).SetUint64(m), new(big.Int))
			if toBig(q).Cmp(wq) != 0 || rem != wr.Uint64() {
				t.Fatalf("divMod(%v, %d) = %v, %d; want %v, %v", n, m, q, rem, wq, wr)
			}
			a := r.Uint64() >> r.IntN(64)
			got, ok := n.mulAdd(m, a)
			want := new(big.Int).Add(new(big.Int).Mul(nb, new(big.Int).SetUint64(m)), new(big.Int).SetUint64(a))
			if fits := want.Cmp(max128) <= 0; ok != fits || ok && toBig(got).Cmp(want) != 0 {
				t.Fatalf("mulAdd(%v, %d, %d) = %v, %v; want %v", n, m, a, got, ok, want)
			}
		}
		if got, want := n.less(u128{n.hi, n.lo + 1}), n.lo != 1<<64-1; got != want {
			t.Fatalf("less(%v, next) = %v", n, got)
		}
	}
	for _, s := range []string{"340282366920938463463374607431768211456", "999999999999999999999999999999999999999", "12a", "-1"} {
		if _, ok := parseDecimal128(s); ok {
			t.Fatalf("parseDecimal128(%q) accepted", s)
		}
	}
	if n, ok := parseDecimal128("340282366920938463463374607431768211455"); !ok || n != (u128{1<<64 - 1, 1<<64 - 1}) {
		t.Fatalf("parseDecimal128(2^128-1) = %v, %v", n, ok)
	}
}
