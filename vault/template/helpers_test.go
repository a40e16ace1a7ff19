package template

import (
	"crypto/hmac"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/tokenvault/tokenvault/crypto/fpe"
)

// testSecret is the fixed secret test keys derive from.
var testSecret = []byte("tokenvault template tests: not a real secret")

// testKeys implements Keys like the vault does: a key per (domain, template, alphabet,
// length), derived here with HMAC-SHA256 from testSecret, and cached.
type testKeys struct {
	domain, template string
	ciphers          sync.Map
}

func newKeys(domain, template string) *testKeys {
	return &testKeys{domain: domain, template: template}
}

func (k *testKeys) FF1(alphabet string, length int) (*fpe.FF1, error) {
	ck := alphabet + "\x00" + strconv.Itoa(length)
	if c, ok := k.ciphers.Load(ck); ok {
		return c.(*fpe.FF1), nil
	}
	m := hmac.New(sha256.New, testSecret)
	for _, p := range []string{"ff1", k.domain, k.template, alphabet, strconv.Itoa(length)} {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	c, err := fpe.NewFF1WithAlphabet(m.Sum(nil), alphabet)
	if err != nil {
		return nil, err
	}
	actual, _ := k.ciphers.LoadOrStore(ck, c)
	return actual.(*fpe.FF1), nil
}

// seeded returns a deterministic randomness source.
func seeded(seed uint64) io.Reader {
	var s [32]byte
	for i := range 4 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func mustBuiltin(name string) Template {
	t, ok := Builtin(name)
	if !ok {
		panic("no builtin " + name)
	}
	return t
}

// usesFF1 reports whether the free space of value (valid for tm) holds at least 10^6
// symbol vectors, so that deterministic candidates come from FF1.
func usesFF1(tm Template, value string) bool {
	pl := tm.(planner)
	p := getPlan(pl, false)
	defer p.release()
	if err := pl.plan(p, value); err != nil {
		panic(err)
	}
	s, ok := p.size64()
	return !ok || s >= ff1MinDomain
}
