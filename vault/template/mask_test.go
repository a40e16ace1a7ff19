package template

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMask(t *testing.T) {
	custom := func(d Definition) Template {
		tm, err := New(d)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	for _, c := range []struct {
		t     Template
		value string
		want  string
	}{
		{mustBuiltin("pan"), "4111111111111111", "************1111"},
		{mustBuiltin("pan"), "4111 1111 1111 1111", "**** **** **** 1111"},
		{mustBuiltin("pan"), "3782-822463-10005", "****-******-*0005"},
		{custom(Definition{Name: "bin", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, MinLength: 14}), "4111 1111 1111 1111", "4111 11** **** 1111"},
		{custom(Definition{Name: "nokeep", Base: "pan"}), "4111111111111111", "************1111"},
		{mustBuiltin("ssn"), "123-45-6789", "***-**-6789"},
		{mustBuiltin("ssn"), "123456789", "*****6789"},
		{custom(Definition{Name: "area", Base: "ssn", KeepPrefix: 3}), "123-45-6789", "123-**-*789"},
		{mustBuiltin("email"), "john.doe@example.com", "j***@example.com"},
		{mustBuiltin("email"), "a@b.co", "a***@b.co"},
		{custom(Definition{Name: "mail", Base: "email", TokenizeDomain: true}), "john@mail.example.com", "j***@***.com"},
		{mustBuiltin("phone"), "+14155550123", "+1********23"},
		{mustBuiltin("phone"), "+1 (415) 555-0123", "+1 (***) ***-**23"},
		{mustBuiltin("phone"), "(415) 555-0123", "(***) ***-**23"},
		{mustBuiltin("phone"), "+44 20 7946 0958", "+44 ** **** **58"},
		{custom(Definition{Name: "tel", Base: "phone", KeepPrefix: 3, MinLength: 10}), "+1 415 555 0123", "+1 415 *** **23"},
		{mustBuiltin("name"), "John Smith", "J*** S****"},
		{mustBuiltin("name"), "Jean-Luc Picard", "J***-L** P*****"},
		{mustBuiltin("name"), "José Ørsted", "J*** Ø*****"},
		{mustBuiltin("name"), "J. R. R. Tolkien", "J. R. R. T******"},
		{mustBuiltin("date"), "1984-06-15", "1984-**-**"},
		{mustBuiltin("iban"), "DE89370400440532013000", "DE****************3000"},
		{mustBuiltin("iban"), "DE89 3704 0044 0532 0130 00", "DE** **** **** **** **30 00"},
		{mustBuiltin("digits"), "1234567890", "******7890"},
		{mustBuiltin("digits"), "1234", "**34"},
		{mustBuiltin("digits"), "7", "*"},
		{mustBuiltin("alnum"), "AbC123xyZ", "*****3xyZ"},
		{custom(Definition{Name: "acct", Base: "digits", KeepPrefix: 2, KeepSuffix: 6, MinLength: 11}), "12345678901", "12***678901"},
		{mustBuiltin("opaque"), "anything", "****"},
		{custom(Definition{Name: "serial", Base: "ssn", KeepPrefix: 5}), "123-45-6789", "123-45-**89"},
		{custom(Definition{Name: "area", Base: "ssn", KeepPrefix: 3}), "123456789", "123***789"},
		{mustBuiltin("phone"), "5550123", "*****23"},
		{custom(Definition{Name: "bank", Base: "iban", KeepPrefix: 8}), "NO9386011117947", "NO**86011117**7"},
	} {
		if got := c.t.Mask(c.value); got != c.want {
			t.Errorf("%s.Mask(%q) = %q, want %q", c.t.Name(), c.value, got, c.want)
		}
	}
}

// TestMaskKeepsShape checks over random values that masks keep the rune length (except
// email and opaque) and only show characters of the value in place.
func TestMaskKeepsShape(t *testing.T) {
	for _, tm := range propertyTemplates(t) {
		gen := genFor(tm)
		r := rand.New(rand.NewPCG(3, 3))
		for range 300 {
			v := gen(r)
			m := tm.Mask(v)
			switch tm.Base() {
			case "email":
				if !strings.HasPrefix(m, v[:1]+"***@") {
					t.Fatalf("%s.Mask(%q) = %q", tm.Name(), v, m)
				}
				continue
			case "opaque":
				if m != "****" {
					t.Fatalf("%s.Mask = %q", tm.Name(), m)
				}
				continue
			}
			vr, mr := []rune(v), []rune(m)
			if len(vr) != len(mr) {
				t.Fatalf("%s.Mask(%q) = %q: length changed", tm.Name(), v, m)
			}
			stars := 0
			for i := range vr {
				if mr[i] == '*' {
					stars++
				} else if mr[i] != vr[i] {
					t.Fatalf("%s.Mask(%q) = %q: rune %d changed", tm.Name(), v, m, i)
				}
			}
			if stars == 0 && utf8.RuneCountInString(v) > 2 && tm.Base() != "name" { // one-letter name parts show whole
				t.Fatalf("%s.Mask(%q) = %q masks nothing", tm.Name(), v, m)
			}
		}
	}
}
