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
	"strings"
	"unicode/utf8"
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

var errNoCandidate = errors.New("template: no acceptable candidate found")

var million = big.NewInt(ff1MinDomain)

// domain is the space of free positions of one value.
type domain struct {
	radix []int
	// alpha, when set, is the common alphabet of every position (len(alpha) == radix[i]):
	// FF1 runs over it directly.
	alpha string
}

func (d *domain) size() *big.Int {
	s := big.NewInt(1)
	if d.alpha != "" {
		return s.Exp(big.NewInt(int64(len(d.alpha))), big.NewInt(int64(len(d.radix))), nil)
	}
	for _, r := range d.radix {
		s.Mul(s, big.NewInt(int64(r)))
	}
	return s
}

func (d *domain) log10() float64 {
	s := 0.0
	for _, r := range d.radix {
		s += math.Log10(float64(r))
	}
	return s
}

// join returns the mixed-radix number of symbols (first position most significant).
func (d *domain) join(sym []int) *big.Int {
	n := new(big.Int)
	var r, v big.Int
	for i, s := range sym {
		n.Mul(n, r.SetInt64(int64(d.radix[i])))
		n.Add(n, v.SetInt64(int64(s)))
	}
	return n
}

// split is the inverse of join.
func (d *domain) split(n *big.Int) []int {
	out := make([]int, len(d.radix))
	n = new(big.Int).Set(n)
	var r, m big.Int
	for i := len(d.radix) - 1; i >= 0; i-- {
		n.QuoRem(n, r.SetInt64(int64(d.radix[i])), &m)
		out[i] = int(m.Int64())
	}
	return out
}

// plan is what a template computes from a valid value.
type plan struct {
	dom    domain
	in     []int                  // the value's symbols at the free positions
	ctx    []byte                 // what separates outputs besides the attempt
	render func(out []int) string // the token for a symbol vector
	accept func(token string) bool
	log10  float64 // log10 of the number of accepted tokens
}

func (p *plan) ok(tok string) bool { return p.accept == nil || p.accept(tok) }

// generate returns candidate number attempt.
func (p *plan) generate(mode Mode, k Keys, attempt int, rnd io.Reader) (string, error) {
	size := p.dom.size()
	if mode == Random || size.Cmp(million) < 0 {
		return p.draw(size, rnd)
	}
	if k == nil {
		return "", errors.New("template: deterministic candidates need Keys")
	}
	return p.walk(size, k, attempt)
}

func (p *plan) draw(size *big.Int, rnd io.Reader) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	for range maxDraws {
		n, err := uniform(rnd, size)
		if err != nil {
			return "", err
		}
		if tok := p.render(p.dom.split(n)); p.ok(tok) {
			return tok, nil
		}
	}
	return "", errNoCandidate
}

func (p *plan) walk(size *big.Int, k Keys, attempt int) (string, error) {
	if a := p.dom.alpha; a != "" {
		f, err := k.FF1(a, len(p.in))
		if err != nil {
			return "", fmt.Errorf("template: FF1 cipher: %w", err)
		}
		b := make([]byte, len(p.in))
		for i, s := range p.in {
			b[i] = a[s]
		}
		x0 := string(b)
		out := make([]int, len(p.in))
		for restart := range maxRestarts {
			tw := tweak(p.ctx, attempt, restart)
			x := x0
			for range maxWalk {
				if x, err = f.Encrypt(tw, x); err != nil {
					return "", fmt.Errorf("template: FF1: %w", err)
				}
				for i := 0; i < len(x); i++ {
					out[i] = strings.IndexByte(a, x[i])
				}
				if tok := p.render(out); p.ok(tok) {
					return tok, nil
				}
			}
		}
		return "", errNoCandidate
	}
	digits := len(new(big.Int).Sub(size, big.NewInt(1)).String())
	f, err := k.FF1(digitChars, digits)
	if err != nil {
		return "", fmt.Errorf("template: FF1 cipher: %w", err)
	}
	x0 := pad(p.dom.join(p.in).String(), digits)
	n := new(big.Int)
	for restart := range maxRestarts {
		tw := tweak(p.ctx, attempt, restart)
		x := x0
		for range maxWalk {
			if x, err = f.Encrypt(tw, x); err != nil {
				return "", fmt.Errorf("template: FF1: %w", err)
			}
			n.SetString(x, 10)
			if n.Cmp(size) >= 0 {
				continue
			}
			if tok := p.render(p.dom.split(n)); p.ok(tok) {
				return tok, nil
			}
		}
	}
	return "", errNoCandidate
}

// tweak derives the 16-byte FF1 tweak from the context, the attempt and the restart.
func tweak(ctx []byte, attempt, restart int) []byte {
	h := sha256.New()
	var b [binary.MaxVarintLen64]byte
	h.Write([]byte("tokenvault/template/v1\x00"))
	h.Write(b[:binary.PutUvarint(b[:], uint64(len(ctx)))])
	h.Write(ctx)
	h.Write(b[:binary.PutUvarint(b[:], uint64(attempt))])
	h.Write(b[:binary.PutUvarint(b[:], uint64(restart))])
	return h.Sum(nil)[:16]
}

func pad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
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

// slots builds plans for templates over ASCII positions of a byte string.
type slots struct {
	buf    []byte
	pos    []int
	alphas []string
	in     []int
}

func newSlots(value string) *slots { return &slots{buf: []byte(value)} }

// add makes byte i a free position over alpha whose value symbol is c (folded into alpha
// when c is not in it).
func (s *slots) add(i int, alpha string, c byte) {
	idx := strings.IndexByte(alpha, c)
	if idx < 0 {
		idx = int(c) % len(alpha)
	}
	s.pos = append(s.pos, i)
	s.alphas = append(s.alphas, alpha)
	s.in = append(s.in, idx)
}

func (s *slots) domain() domain {
	d := domain{radix: make([]int, len(s.pos))}
	uniform := len(s.pos) > 0
	for i, a := range s.alphas {
		d.radix[i] = len(a)
		if a != s.alphas[0] {
			uniform = false
		}
	}
	if uniform {
		d.alpha = s.alphas[0]
	}
	return d
}

func (s *slots) render(out []int) string {
	b := append([]byte(nil), s.buf...)
	for i, p := range s.pos {
		b[p] = s.alphas[i][out[i]]
	}
	return string(b)
}

// skeleton returns the kept bytes with each free position replaced by a marker of its
// alphabet: the tweak context.
func (s *slots) skeleton(extra ...string) []byte {
	var ctx []byte
	for _, e := range extra {
		ctx = append(ctx, e...)
		ctx = append(ctx, 0)
	}
	j := 0
	for i, c := range s.buf {
		if j < len(s.pos) && s.pos[j] == i {
			a := s.alphas[j]
			ctx = append(ctx, 0, byte(len(a)), a[0], a[len(a)-1])
			j++
			continue
		}
		ctx = append(ctx, c)
	}
	return ctx
}

// plan assembles the plan of the slots.
func (s *slots) plan(accept func(string) bool, extraLog10 float64, ctx ...string) *plan {
	d := s.domain()
	return &plan{dom: d, in: s.in, ctx: s.skeleton(ctx...), render: s.render, accept: accept, log10: d.log10() + extraLog10}
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
