package template

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tokenvault/tokenvault/crypto/fpe"
)

// The candidate engine. A template turns a value into a plan: the value's free positions,
// each with a radix (its "domain"), the value's own symbols at those positions, a context of
// everything kept (the kept characters, separators, case or class pattern), a renderer
// that writes a symbol vector into the kept skeleton, and an optional acceptance predicate
// (Luhn rule, SSN field rules).
//
// Random mode, or a domain below 10^6: draw a uniform symbol vector from rnd, rejecting
// vectors that fail the predicate. Deterministic mode with a domain of at least 10^6:
// encrypt the value's symbols with FF1 under tweak = H(context, attempt, restart) and
// cycle-walk (re-encrypt) until the result lies in the domain and passes the predicate.
// When every position has the same alphabet, FF1 runs over that alphabet directly;
// otherwise the mixed-radix number of the symbols is enciphered as a decimal string of
// len(domain-1) digits and the walk also skips numbers >= the domain size.
//
// A walk started from a value outside the accepted set could in principle sit on a cycle
// with no accepted element: after maxWalk steps the walk restarts from the value under the
// next restart number (a fresh tweak).
//
// Performance: the vault plans each tokenized item once (Prepare: validation, free space
// and first candidate from one plan); Candidate plans again for each later attempt. A plan
// lives in pooled scratch (getPlan, release), cleared after every call, rather than in
// fresh allocations; Check and FreeSpaceOf build only a light plan (the validation and
// the radixes); mixed-radix arithmetic runs on uint64 or 128-bit integers whenever the
// domain fits, math/big only beyond. None of this changes a candidate: the golden test
// (golden_test.go, testdata/golden.txt, recorded with the earlier math/big engine) pins
// the outputs.

const (
	ff1MinDomain = 1_000_000 // SP 800-38G Rev. 1 minimum radix^length
	maxWalk      = 1000      // cycle-walking steps per restart
	maxRestarts  = 8
	maxDraws     = 100_000 // random draws before giving up (predicate never held)
)

const (
	digitChars  = "0123456789"
	lowerChars  = "abcdefghijklmnopqrstuvwxyz"
	upperChars  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerDigits = digitChars + lowerChars // email tokens
	base62Chars = digitChars + upperChars + lowerChars
)

// tweakPrefix starts the hashed input of every tweak (version of the derivation).
const tweakPrefix = "tokenvault/template/v1\x00"

var errNoCandidate = errors.New("template: no acceptable candidate found")

// log10Small[r] = math.Log10(float64(r)) for the radixes of character positions, so that
// log10 sums are computed from exactly the values math.Log10 gives.
var log10Small = func() (t [257]float64) {
	for r := range t {
		t[r] = math.Log10(float64(r))
	}
	return t
}()

func log10Radix(r int) float64 {
	if uint(r) < uint(len(log10Small)) {
		return log10Small[r]
	}
	return math.Log10(float64(r))
}

// planner is implemented by every concrete template. plan validates value and fills p with
// the value's plan; of a light plan (Check, FreeSpaceOf) only log10 is used. render writes the
// token of the symbol vector out into p.tok; accept reports whether p.tok is an acceptable
// token (the template's rule: Luhn, SSN fields).
type planner interface {
	plan(p *plan, value string) error
	render(p *plan, out []int)
	accept(p *plan) bool
}

// plan is what a template computes from a valid value: the domain of its free positions,
// its symbols, its tweak context and what the renderer needs. Plans are pooled scratch
// (getPlan, release): they hold a value only for the duration of one call and are cleared
// before they are reused, and nothing returned to a caller points into them.
type plan struct {
	t     planner // the template that made the plan
	light bool    // only validate and count (Check, FreeSpaceOf)

	radix []int  // radix of each free position
	in    []int  // the value's symbols at the free positions
	alpha string // when uniform, the common alphabet of every position (len(alpha) == radix[i])
	// uniform: every position has the same alphabet (false when there is none). Only slots
	// plans track it; the other templates set alpha directly.
	uniform bool
	ctx     []byte  // what separates outputs besides the attempt
	log10   float64 // log10 of the number of accepted tokens

	// Slots templates (ASCII positions of a byte string): buf is the value's bytes, pos and
	// alphas the offset and alphabet of each free position.
	buf    []byte
	pos    []int
	alphas []string

	offs  []int  // parse scratch: byte offsets of digits or IBAN characters
	chars []byte // parse scratch: the compact IBAN
	runes []rune // name: the value's runes
	flags []byte // name: nameFree and nameUpper for each rune
	day0  int64  // date: the day number of symbol 0

	// Generation scratch.
	out []int
	tok []byte
	x   []byte
	tw  []byte
	sum [sha256.Size]byte
	rb  [8]byte
	rev [256]byte // rev[alpha[i]] = i during a walk over alpha
}

var planPool = sync.Pool{New: func() any { return new(plan) }}

// getPlan returns a cleared plan for template t.
func getPlan(t planner, light bool) *plan {
	p := planPool.Get().(*plan)
	p.t, p.light = t, light
	return p
}

// maxPooled is the largest scratch capacity a plan keeps when it is released. Values are at
// most a few hundred bytes but for opaque, whose plan copies (to hash) only values up to
// this size.
const maxPooled = 4096

// release clears p and returns it to the pool. After a successful plan, everything
// written lies within the lengths of its slices; after an error, call releaseFailed.
func (p *plan) release() {
	p.reset()
	if cap(p.buf) > maxPooled || cap(p.tok) > maxPooled || cap(p.ctx) > maxPooled || cap(p.runes) > maxPooled {
		return // let the garbage collector have it
	}
	planPool.Put(p)
}

// releaseFailed is release after plan failed: a parse may have left part of the value in
// the spare capacity of its scratch.
func (p *plan) releaseFailed() {
	p.scrubSpare()
	p.release()
}

// scrubSpare clears the spare capacity of the parse scratch.
func (p *plan) scrubSpare() {
	clear(p.offs[:cap(p.offs)])
	clear(p.chars[:cap(p.chars)])
	clear(p.runes[:cap(p.runes)])
	clear(p.flags[:cap(p.flags)])
}

// reset clears what p held of a value (its bytes, symbols, context, tweak input and tokens)
// and empties it, keeping the capacity of its slices.
func (p *plan) reset() {
	clear(p.in)
	clear(p.ctx)
	clear(p.buf)
	clear(p.offs)
	clear(p.chars)
	clear(p.runes)
	clear(p.flags)
	clear(p.out)
	clear(p.tok)
	clear(p.x)
	clear(p.tw)
	// p.alphas holds the templates' alphabets, nothing of a value: emptied, not cleared
	// (clearing pointers costs write barriers while the GC runs).
	p.radix, p.in, p.ctx = p.radix[:0], p.in[:0], p.ctx[:0]
	p.buf, p.pos, p.alphas = p.buf[:0], p.pos[:0], p.alphas[:0]
	p.offs, p.chars, p.runes, p.flags = p.offs[:0], p.chars[:0], p.runes[:0], p.flags[:0]
	p.out, p.tok, p.x, p.tw = p.out[:0], p.tok[:0], p.x[:0], p.tw[:0]
	p.t, p.light, p.alpha, p.uniform, p.log10, p.day0 = nil, false, "", false, 0, 0
	p.sum, p.rb = [sha256.Size]byte{}, [8]byte{}
	// p.rev maps alphabet characters to their index: nothing of a value either.
}

// startSlots begins a slots plan over the bytes of value.
func (p *plan) startSlots(value string) {
	if !p.light {
		p.buf = append(p.buf[:0], value...)
	}
}

// add makes byte i a free position over alpha whose value symbol is c (folded into alpha
// when c is not in it). A light plan records only the radix.
func (p *plan) add(i int, alpha string, c byte) {
	p.radix = append(p.radix, len(alpha))
	if !p.light {
		p.addFree(i, alpha, c)
	}
}

func (p *plan) addFree(i int, alpha string, c byte) {
	switch {
	case len(p.pos) == 0:
		p.alpha, p.uniform = alpha, true
	case p.uniform && alpha != p.alpha:
		p.alpha, p.uniform = "", false
	}
	var idx int
	if alpha == digitChars && isDigit(c) {
		idx = int(c - '0')
	} else if idx = strings.IndexByte(alpha, c); idx < 0 {
		idx = int(c) % len(alpha)
	}
	p.pos = append(p.pos, i)
	p.alphas = append(p.alphas, alpha)
	p.in = append(p.in, idx)
}

// finishSlots completes a slots plan: its log10 is that of the domain plus extraLog10, and
// its tweak context is the skeleton: the kept bytes with each free position replaced by a
// marker of its alphabet.
func (p *plan) finishSlots(extraLog10 float64) {
	s := 0.0
	for _, r := range p.radix {
		s += log10Small[r] // alphabets have distinct bytes: at most 256
	}
	p.log10 = s + extraLog10
	if p.light {
		return
	}
	ctx, j := p.ctx[:0], 0
	for i, c := range p.buf {
		if j < len(p.pos) && p.pos[j] == i {
			a := p.alphas[j]
			ctx = append(ctx, 0, byte(len(a)), a[0], a[len(a)-1])
			j++
			continue
		}
		ctx = append(ctx, c)
	}
	p.ctx = ctx
}

// renderSlots writes the slots token of out: the value's bytes with the free positions
// replaced.
func (p *plan) renderSlots(out []int) {
	tok := append(p.tok[:0], p.buf...)
	for i, at := range p.pos {
		tok[at] = p.alphas[i][out[i]]
	}
	p.tok = tok
}

// The defaults of every template: a slots token, no rule.
func (c *common) render(p *plan, out []int) { p.renderSlots(out) }
func (c *common) accept(*plan) bool         { return true }

// size64 returns the number of symbol vectors of the domain, and whether it fits in a
// uint64.
func (p *plan) size64() (uint64, bool) {
	s := uint64(1)
	for _, r := range p.radix {
		hi, lo := bits.Mul64(s, uint64(r))
		if hi != 0 {
			return 0, false
		}
		s = lo
	}
	return s, true
}

// sizeBig is the size of the domain as a big.Int.
func (p *plan) sizeBig() *big.Int {
	s := big.NewInt(1)
	if p.alpha != "" {
		return s.Exp(big.NewInt(int64(len(p.alpha))), big.NewInt(int64(len(p.radix))), nil)
	}
	var r big.Int
	for _, x := range p.radix {
		s.Mul(s, r.SetInt64(int64(x)))
	}
	return s
}

// outBuf returns p.out resized to one symbol per free position.
func (p *plan) outBuf() []int {
	n := len(p.radix)
	if cap(p.out) < n {
		p.out = make([]int, n)
	}
	p.out = p.out[:n]
	return p.out
}

// split64 writes the symbols of the mixed-radix number n (first position most
// significant) to out; the domain size must fit in a uint64.
func (p *plan) split64(n uint64, out []int) {
	for i := len(p.radix) - 1; i >= 0; i-- {
		r := uint64(p.radix[i])
		q := n / r
		out[i] = int(n - q*r)
		n = q
	}
}

// joinBig returns the mixed-radix number of symbols (first position most significant).
func (p *plan) joinBig(sym []int) *big.Int {
	n := new(big.Int)
	var r, v big.Int
	for i, s := range sym {
		n.Mul(n, r.SetInt64(int64(p.radix[i])))
		n.Add(n, v.SetInt64(int64(s)))
	}
	return n
}

// splitBig is the inverse of joinBig, into out.
func (p *plan) splitBig(n *big.Int, out []int) {
	n = new(big.Int).Set(n)
	var r, m big.Int
	for i := len(p.radix) - 1; i >= 0; i-- {
		n.QuoRem(n, r.SetInt64(int64(p.radix[i])), &m)
		out[i] = int(m.Int64())
	}
}

// tweak derives the 16-byte FF1 tweak from the context, the attempt and the restart. The
// result points into p.
func (p *plan) tweak(attempt, restart int) []byte {
	p.tw = appendTweakInput(p.tw[:0], p.ctx, attempt, restart)
	p.sum = sha256.Sum256(p.tw)
	return p.sum[:16]
}

// appendTweakInput appends the hashed input of a tweak: the prefix, then the context
// (length-prefixed), the attempt and the restart as uvarints.
func appendTweakInput(b, ctx []byte, attempt, restart int) []byte {
	b = append(b, tweakPrefix...)
	b = binary.AppendUvarint(b, uint64(len(ctx)))
	b = append(b, ctx...)
	b = binary.AppendUvarint(b, uint64(attempt))
	return binary.AppendUvarint(b, uint64(restart))
}

// tweak is plan.tweak for a context outside a plan.
func tweak(ctx []byte, attempt, restart int) []byte {
	s := sha256.Sum256(appendTweakInput(nil, ctx, attempt, restart))
	return s[:16]
}

// generate returns candidate number attempt.
func (p *plan) generate(mode Mode, k Keys, attempt int, rnd io.Reader) (string, error) {
	size, fits := p.size64()
	if mode == Random || fits && size < ff1MinDomain {
		if rnd == nil {
			rnd = rand.Reader
		}
		if fits {
			return p.draw64(size, rnd)
		}
		return p.drawBig(p.sizeBig(), rnd)
	}
	if k == nil {
		return "", errors.New("template: deterministic candidates need Keys")
	}
	if p.alpha != "" {
		return p.walkAlpha(k, attempt)
	}
	if size, ok := p.size128(); ok {
		return p.walk128(size, k, attempt)
	}
	return p.walkBig(p.sizeBig(), k, attempt)
}

// try renders out and reports whether the token is acceptable.
func (p *plan) try(out []int) bool {
	p.t.render(p, out)
	return p.t.accept(p)
}

func (p *plan) draw64(size uint64, rnd io.Reader) (string, error) {
	return p.draw(func(out []int) error {
		n, err := p.uniform64(rnd, size)
		if err == nil {
			p.split64(n, out)
		}
		return err
	})
}

func (p *plan) drawBig(size *big.Int, rnd io.Reader) (string, error) {
	return p.draw(func(out []int) error {
		n, err := uniform(rnd, size)
		if err == nil {
			p.splitBig(n, out)
		}
		return err
	})
}

// draw renders uniformly random candidates, which next writes into out, until one is
// acceptable or maxDraws have not been.
func (p *plan) draw(next func(out []int) error) (string, error) {
	out := p.outBuf()
	for range maxDraws {
		if err := next(out); err != nil {
			return "", err
		}
		if p.try(out) {
			return string(p.tok), nil
		}
	}
	return "", errNoCandidate
}

// walkAlpha walks with FF1 over the common alphabet of the positions.
func (p *plan) walkAlpha(k Keys, attempt int) (string, error) {
	a := p.alpha
	f, err := k.FF1(a, len(p.in))
	if err != nil {
		return "", fmt.Errorf("template: FF1 cipher: %w", err)
	}
	b := p.x[:0]
	for _, s := range p.in {
		b = append(b, a[s])
	}
	p.x = b
	x0 := string(b)
	for i := len(a) - 1; i >= 0; i-- { // the first occurrence, as strings.IndexByte
		p.rev[a[i]] = byte(i)
	}
	out := p.outBuf()
	w := ff1Walk{p: p, f: f, attempt: attempt}
	for x, ok := w.next(x0, ""); ; x, ok = w.next(x0, x) {
		if !ok {
			return "", w.end()
		}
		if len(x) != len(out) {
			return "", errors.New("template: FF1 output has the wrong length")
		}
		for i := 0; i < len(x); i++ {
			out[i] = int(p.rev[x[i]])
		}
		if p.try(out) {
			return string(p.tok), nil
		}
	}
}

// ff1Walk follows the cycle of an FF1 cipher from a start value, under the tweak of each
// restart in turn. The walks keep it on their stack and hold the start value and the
// current ciphertext themselves, rather than take a callback or let the walk store them, so
// that those strings stay off the heap.
type ff1Walk struct {
	p       *plan
	f       *fpe.FF1
	attempt int

	tw            []byte
	restart, step int
	err           error
}

// next returns the ciphertext after x (after the start value x0 at the start of a restart),
// or false when the walk is over.
func (w *ff1Walk) next(x0, x string) (string, bool) {
	for w.restart < maxRestarts {
		if w.step == maxWalk {
			w.restart, w.step = w.restart+1, 0
			continue
		}
		if w.step == 0 {
			w.tw, x = w.p.tweak(w.attempt, w.restart), x0
		}
		w.step++
		x, err := w.f.Encrypt(w.tw, x)
		if err != nil {
			w.err = fmt.Errorf("template: FF1: %w", err)
			return "", false
		}
		return x, true
	}
	return "", false
}

// end is the error of a walk that found no acceptable token.
func (w *ff1Walk) end() error {
	if w.err != nil {
		return w.err
	}
	return errNoCandidate
}

// walk128 walks with FF1 over the decimal digits of the mixed-radix number, for a domain
// size below 2^128.
func (p *plan) walk128(size u128, k Keys, attempt int) (string, error) {
	var d [40]byte
	digits := len(size.sub1().appendDecimal(d[:0]))
	f, err := k.FF1(digitChars, digits)
	if err != nil {
		return "", fmt.Errorf("template: FF1 cipher: %w", err)
	}
	var n u128
	for i, s := range p.in {
		n, _ = n.mulAdd(uint64(p.radix[i]), uint64(s)) // n < size
	}
	s := n.appendDecimal(d[:0])
	b := p.x[:0]
	for range digits - len(s) {
		b = append(b, '0')
	}
	b = append(b, s...)
	p.x = b
	x0 := string(b)
	out := p.outBuf()
	w := ff1Walk{p: p, f: f, attempt: attempt}
	for x, ok := w.next(x0, ""); ; x, ok = w.next(x0, x) {
		if !ok {
			return "", w.end()
		}
		n, ok := parseDecimal128(x)
		if !ok || !n.less(size) {
			continue
		}
		for i := len(out) - 1; i >= 0; i-- {
			var r uint64
			n, r = n.divMod(uint64(p.radix[i]))
			out[i] = int(r)
		}
		if p.try(out) {
			return string(p.tok), nil
		}
	}
}

// walkBig is walk128 with math/big, for larger domains.
func (p *plan) walkBig(size *big.Int, k Keys, attempt int) (string, error) {
	digits := len(new(big.Int).Sub(size, big.NewInt(1)).String())
	f, err := k.FF1(digitChars, digits)
	if err != nil {
		return "", fmt.Errorf("template: FF1 cipher: %w", err)
	}
	x0 := pad(p.joinBig(p.in).String(), digits)
	n := new(big.Int)
	out := p.outBuf()
	w := ff1Walk{p: p, f: f, attempt: attempt}
	for x, ok := w.next(x0, ""); ; x, ok = w.next(x0, x) {
		if !ok {
			return "", w.end()
		}
		n.SetString(x, 10)
		if n.Cmp(size) >= 0 {
			continue
		}
		p.splitBig(n, out)
		if p.try(out) {
			return string(p.tok), nil
		}
	}
}

// u128 is an unsigned 128-bit integer, for mixed-radix domains too large for a uint64.
type u128 struct{ hi, lo uint64 }

// mulAdd returns n*m + a, and whether it fits in 128 bits.
func (n u128) mulAdd(m, a uint64) (u128, bool) {
	h1, lo := bits.Mul64(n.lo, m)
	h2, l2 := bits.Mul64(n.hi, m)
	hi, c1 := bits.Add64(l2, h1, 0)
	lo, c2 := bits.Add64(lo, a, 0)
	hi, c3 := bits.Add64(hi, 0, c2)
	return u128{hi, lo}, h2|c1|c3 == 0
}

// divMod returns n/d and n%d, for d > 0.
func (n u128) divMod(d uint64) (u128, uint64) {
	if n.hi == 0 {
		return u128{0, n.lo / d}, n.lo % d
	}
	qhi, r := bits.Div64(0, n.hi, d)
	qlo, r := bits.Div64(r, n.lo, d)
	return u128{qhi, qlo}, r
}

func (n u128) less(m u128) bool { return n.hi < m.hi || n.hi == m.hi && n.lo < m.lo }

// sub1 returns n-1, for n > 0.
func (n u128) sub1() u128 {
	lo, b := bits.Sub64(n.lo, 1, 0)
	return u128{n.hi - b, lo}
}

// appendDecimal appends the decimal digits of n.
func (n u128) appendDecimal(b []byte) []byte {
	if n.hi == 0 {
		return strconv.AppendUint(b, n.lo, 10)
	}
	const e19 = 10_000_000_000_000_000_000
	q, r := n.divMod(e19)
	b = q.appendDecimal(b)
	var d [19]byte
	s := strconv.AppendUint(d[:0], r, 10)
	for range len(d) - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

// parseDecimal128 parses the decimal digits s; ok is false when s has another byte or the
// number does not fit in 128 bits.
func parseDecimal128(s string) (n u128, ok bool) {
	for i := 0; i < len(s); i++ {
		d := uint64(s[i] - '0')
		if d > 9 {
			return u128{}, false
		}
		if n, ok = n.mulAdd(10, d); !ok {
			return u128{}, false
		}
	}
	return n, true
}

// size128 returns the number of symbol vectors of the domain, and whether it is below
// 2^128.
func (p *plan) size128() (u128, bool) {
	s := u128{0, 1}
	for _, r := range p.radix {
		var ok bool
		if s, ok = s.mulAdd(uint64(r), 0); !ok {
			return u128{}, false
		}
	}
	return s, true
}

func pad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

// uniform64 returns a uniform integer in [0, max) read from rnd, reading exactly what
// uniform reads for the same max.
func (p *plan) uniform64(rnd io.Reader, max uint64) (uint64, error) {
	if max <= 1 {
		return 0, nil
	}
	nbits := bits.Len64(max - 1)
	buf := p.rb[:(nbits+7)/8]
	mask := byte(1<<(nbits-8*(len(buf)-1)) - 1)
	for range 1000 {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return 0, fmt.Errorf("template: reading randomness: %w", err)
		}
		buf[0] &= mask
		var n uint64
		for _, c := range buf {
			n = n<<8 | uint64(c)
		}
		if n < max {
			return n, nil
		}
	}
	return 0, errors.New("template: randomness source looks broken")
}

// uniform returns a uniform integer in [0, max) read from rnd.
func uniform(rnd io.Reader, max *big.Int) (*big.Int, error) {
	if max.Cmp(big.NewInt(1)) <= 0 {
		return new(big.Int), nil
	}
	bits := new(big.Int).Sub(max, big.NewInt(1)).BitLen()
	buf := make([]byte, (bits+7)/8)
	mask := byte(1<<(bits-8*(len(buf)-1)) - 1)
	n := new(big.Int)
	for range 1000 {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return nil, fmt.Errorf("template: reading randomness: %w", err)
		}
		buf[0] &= mask
		if n.SetBytes(buf).Cmp(max) < 0 {
			return n, nil
		}
	}
	return nil, errors.New("template: randomness source looks broken")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isAlnum(c byte) bool { return isDigit(c) || isUpper(c) || isLower(c) }

func validUTF8(s string) bool { return utf8.ValidString(s) }

// maskSuffix returns how many trailing characters a mask shows: the kept suffix ks, grown
// towards n but by at most half of the free characters, so a mask never reveals more than
// the token plus half of what the token hides.
func maskSuffix(n, ks, free int) int { return max(ks, min(n, ks+free/2)) }

// maskBytes returns value with the bytes at positions not in show replaced by '*'.
func maskBytes(value string, show func(i int) bool) string {
	b := []byte(value)
	for i := range b {
		if !show(i) {
			b[i] = '*'
		}
	}
	return string(b)
}
