package template

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestBuiltins(t *testing.T) {
	want := []string{"pan", "ssn", "email", "phone", "name", "date", "iban", "digits", "alnum", "opaque"}
	if got := BuiltinNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("BuiltinNames() = %v", got)
	}
	BuiltinNames()[0] = "changed" // the caller's copy
	for _, n := range want {
		tm, ok := Builtin(n)
		if !ok || tm.Name() != n || tm.Base() != n || tm.Mode() != Deterministic {
			t.Errorf("Builtin(%q) = %v, %v", n, tm, ok)
			continue
		}
		if d := tm.Definition(); d.Name != n || d.Base != n {
			t.Errorf("%s: Definition() = %+v", n, d)
		}
	}
	if _, ok := Builtin("nope"); ok {
		t.Error("Builtin(nope) found")
	}
	pan := mustBuiltin("pan").Definition()
	if pan.KeepSuffix != 4 || pan.Luhn != LuhnInvalid || pan.MinLength != 12 || pan.MaxLength != 19 {
		t.Errorf("pan definition = %+v", pan)
	}
	date := mustBuiltin("date").Definition()
	if date.MinYear != 1 || date.MaxYear != 9999 {
		t.Errorf("date definition = %+v", date)
	}
}

func TestFreeSpace(t *testing.T) {
	for _, c := range []struct {
		tmpl   string
		length int
		want   float64
		ok     bool
	}{
		{"pan", 12, 8 + math.Log10(0.9), true},
		{"pan", 19, 15 + math.Log10(0.9), true},
		{"pan", 11, 0, false},
		{"ssn", 9, math.Log10(898 * 99 * 9999), true},
		{"ssn", 8, 0, false},
		{"phone", 7, 4, true},
		{"phone", 15, 12, true},
		{"email", 1, math.Log10(36), true},
		{"email", 65, 0, false},
		{"name", 3, 3 * math.Log10(26), true},
		{"date", 0, math.Log10(3652059), true},
		{"iban", 15, 11, true},
		{"iban", 35, 0, false},
		{"digits", 4, 4, true},
		{"alnum", 4, 4, true},
		{"opaque", 0, 22 * math.Log10(62), true},
	} {
		got, ok := mustBuiltin(c.tmpl).FreeSpace(c.length)
		if ok != c.ok || ok && math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s.FreeSpace(%d) = %v, %v; want %v, %v", c.tmpl, c.length, got, ok, c.want, c.ok)
		}
	}
	// FreeSpaceOf is exact for the value.
	for _, c := range []struct {
		tmpl, value string
		want        float64
	}{
		{"pan", "4111 1111 1111 1111", 12 + math.Log10(0.9)},
		{"phone", "+44 20 7946 0958", 10},
		{"phone", "(415) 555-0123", 10},
		{"email", "a.b@example.com", 2 * math.Log10(36)},
		{"iban", "GB29NWBK60161331926819", 4*math.Log10(26) + 14},
		{"alnum", "aB3", 2*math.Log10(26) + 1},
		{"name", "Jo-Ann", 5 * math.Log10(26)},
	} {
		got, err := mustBuiltin(c.tmpl).FreeSpaceOf(c.value)
		if err != nil || math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%s.FreeSpaceOf(%q) = %v, %v; want %v", c.tmpl, c.value, got, err, c.want)
		}
	}
	if _, err := mustBuiltin("pan").FreeSpaceOf("x"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("FreeSpaceOf(invalid) = %v", err)
	}
}

func TestNewValid(t *testing.T) {
	for _, d := range []Definition{
		{Name: "card", Base: "pan"},
		{Name: "card-bin", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, MinLength: 14},
		{Name: "card_valid", Base: "pan", Luhn: LuhnValid, KeepSuffix: 4, Mode: Random},
		{Name: "ssn4", Base: "ssn", KeepSuffix: 4},
		{Name: "mail", Base: "email", TokenizeDomain: true},
		{Name: "tel", Base: "phone", KeepPrefix: 1},
		{Name: "dob", Base: "date", MinYear: 1900, MaxYear: 2100},
		{Name: "dob2", Base: "date", KeepYear: true, MinYear: 2000, MaxYear: 2000},
		{Name: "bank", Base: "iban", KeepPrefix: 8},
		{Name: "pin", Base: "digits", MinLength: 4, MaxLength: 4},
		{Name: "ref", Base: "alnum", Alphabet: "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"},
		{Name: "o", Base: "opaque", Mode: Random},
		{Name: "a" + strings.Repeat("b-_9", 15) + "xy", Base: "name"}, // 63 characters
	} {
		tm, err := New(d)
		if err != nil {
			t.Errorf("New(%+v) = %v", d, err)
			continue
		}
		if tm.Name() != d.Name || tm.Base() != d.Base || tm.Mode() != d.Mode {
			t.Errorf("New(%+v) = %s/%s/%v", d, tm.Name(), tm.Base(), tm.Mode())
		}
		// The normalized definition survives JSON and rebuilds the same template.
		norm := tm.Definition()
		blob, err := json.Marshal(norm)
		if err != nil {
			t.Fatal(err)
		}
		var back Definition
		if err := json.Unmarshal(blob, &back); err != nil {
			t.Fatal(err)
		}
		if back != norm {
			t.Errorf("JSON round trip of %+v gave %+v (%s)", norm, back, blob)
		}
		tm2, err := New(back)
		if err != nil || tm2.Definition() != norm {
			t.Errorf("New(normalized %+v) = %v", norm, err)
		}
	}
}

func TestDefinitionJSON(t *testing.T) {
	var d Definition
	err := json.Unmarshal([]byte(`{"name":"c","base":"pan","mode":"random","keep_prefix":6,"keep_suffix":4,"luhn":"valid","min_length":16}`), &d)
	want := Definition{Name: "c", Base: "pan", Mode: Random, KeepPrefix: 6, KeepSuffix: 4, Luhn: LuhnValid, MinLength: 16}
	if err != nil || d != want {
		t.Errorf("Unmarshal = %+v, %v", d, err)
	}
	blob, _ := json.Marshal(Definition{Name: "x", Base: "email", TokenizeDomain: true})
	if string(blob) != `{"name":"x","base":"email","mode":"deterministic","tokenize_domain":true}` {
		t.Errorf("Marshal = %s", blob)
	}
	if err := json.Unmarshal([]byte(`{"mode":"sometimes"}`), &d); !errors.Is(err, ErrInvalidDefinition) {
		t.Errorf("bad mode: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"mode":""}`), &d); err != nil || d.Mode != Deterministic {
		t.Errorf("empty mode: %v %v", d.Mode, err)
	}
	if _, err := json.Marshal(Definition{Mode: 7}); err == nil {
		t.Error("marshalled mode 7")
	}
	for s, m := range map[string]Mode{"deterministic": Deterministic, "random": Random, "": Deterministic} {
		if got, err := ParseMode(s); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
		}
	}
	if Mode(5).String() != "Mode(5)" || Random.String() != "random" {
		t.Error("Mode.String")
	}
}

func TestNewInvalid(t *testing.T) {
	for _, c := range []struct {
		def     Definition
		problem string
		unknown bool
	}{
		{Definition{Name: "", Base: "pan"}, "name must match [a-z][a-z0-9_-]{0,62}", false},
		{Definition{Name: "Card", Base: "pan"}, "name must match [a-z][a-z0-9_-]{0,62}", false},
		{Definition{Name: "1card", Base: "pan"}, "name must match [a-z][a-z0-9_-]{0,62}", false},
		{Definition{Name: "card.x", Base: "pan"}, "name must match [a-z][a-z0-9_-]{0,62}", false},
		{Definition{Name: "a234567890123456789012345678901234567890123456789012345678901234", Base: "pan"}, "name must match [a-z][a-z0-9_-]{0,62}", false},
		{Definition{Name: "pan", Base: "pan"}, "name collides with builtin", false},
		{Definition{Name: "opaque", Base: "digits"}, "name collides with builtin", false},
		{Definition{Name: "card"}, "base is required", false},
		{Definition{Name: "card", Base: "visa"}, `base "visa" is not a builtin template (one of pan, ssn, email, phone, name, date, iban, digits, alnum, opaque)`, true},
		{Definition{Name: "card", Base: "pan", Mode: 2}, "mode must be deterministic or random", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: -1}, "keep-prefix must not be negative", false},
		{Definition{Name: "card", Base: "pan", KeepSuffix: -4}, "keep-suffix must not be negative", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 20}, "keep-prefix 20 leaves no free characters", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 6, KeepSuffix: 14}, "keep-prefix 6 and keep-suffix 14 leave no free characters", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 6, KeepSuffix: 4}, "keep-prefix 6 and keep-suffix 4 leave only 90 possible tokens for 12-digit values (minimum 1000); raise min-length to 14", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, Luhn: LuhnValid}, "keep-prefix 6 and keep-suffix 4 leave only 10 possible tokens for 12-digit values (minimum 1000); raise min-length to 14", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, Luhn: LuhnAny}, "keep-prefix 6 and keep-suffix 4 leave only 100 possible tokens for 12-digit values (minimum 1000); raise min-length to 13", false},
		{Definition{Name: "card", Base: "pan", KeepPrefix: 8, KeepSuffix: 4, MaxLength: 15}, "keep-prefix 8 and keep-suffix 4 leave only 0 possible tokens for 12-digit values (minimum 1000)", false},
		{Definition{Name: "card", Base: "pan", KeepSuffix: 10, MaxLength: 13}, "keep-suffix 10 leaves only 90 possible tokens for 12-digit values (minimum 1000)", false},
		{Definition{Name: "card", Base: "pan", Luhn: "maybe"}, `luhn must be "invalid", "valid" or "any"`, false},
		{Definition{Name: "card", Base: "pan", MinLength: 11}, "min-length 11 is outside 12..19 for base pan", false},
		{Definition{Name: "card", Base: "pan", MaxLength: 20}, "max-length 20 is outside 12..19 for base pan", false},
		{Definition{Name: "card", Base: "pan", MinLength: 16, MaxLength: 15}, "min-length 16 exceeds max-length 15", false},
		{Definition{Name: "s", Base: "ssn", KeepPrefix: 4}, "keep-prefix for base ssn must be 0, 3 or 5 (whole fields)", false},
		{Definition{Name: "s", Base: "ssn", KeepSuffix: 2}, "keep-suffix for base ssn must be 0 or 4 (whole fields)", false},
		{Definition{Name: "s", Base: "ssn", KeepPrefix: 3, KeepSuffix: 4}, "keep-prefix 3 and keep-suffix 4 leave only 99 possible tokens for 9-digit values (minimum 1000)", false},
		{Definition{Name: "s", Base: "ssn", KeepPrefix: 5, KeepSuffix: 4}, "keep-prefix 5 and keep-suffix 4 leave no free characters", false},
		{Definition{Name: "t", Base: "phone", KeepPrefix: 3}, "keep-prefix 3 leaves only 10 possible tokens for 7-digit values (minimum 1000); raise min-length to 9", false},
		{Definition{Name: "i", Base: "iban", KeepPrefix: 9}, "keep-prefix 9 leaves only 100 possible tokens for 15-character values (minimum 1000)", false},
		{Definition{Name: "d", Base: "digits", KeepSuffix: 4}, "keep-suffix 4 leaves only 0 possible tokens for 1-digit values (minimum 1000); raise min-length to 7", false},
		{Definition{Name: "d", Base: "digits", KeepSuffix: 4, Alphabet: "01"}, "keep-suffix 4 leaves only 0 possible tokens for 1-digit values (minimum 1000); raise min-length to 14", false},
		{Definition{Name: "d", Base: "digits", KeepPrefix: 64}, "keep-prefix 64 leaves no free characters", false},
		{Definition{Name: "d", Base: "digits", KeepPrefix: math.MaxInt, KeepSuffix: math.MaxInt}, "keep-prefix 9223372036854775807 leaves no free characters", false},
		{Definition{Name: "d", Base: "digits", KeepSuffix: 1 << 40}, "keep-suffix 1099511627776 leaves no free characters", false},
		{Definition{Name: "d", Base: "digits", MinLength: math.MinInt}, "min-length -9223372036854775808 is outside 1..64 for base digits", false},
		{Definition{Name: "x", Base: "date", MinYear: math.MaxInt}, "min-year 9223372036854775807 is outside 1..9999", false},
		{Definition{Name: "d", Base: "digits", Alphabet: "0"}, "alphabet needs at least 2 characters", false},
		{Definition{Name: "d", Base: "digits", Alphabet: "0120"}, "alphabet has a duplicate character", false},
		{Definition{Name: "d", Base: "digits", Alphabet: "01a"}, "alphabet for base digits may contain only 0-9", false},
		{Definition{Name: "a", Base: "alnum", Alphabet: "AB-"}, "alphabet for base alnum may contain only ASCII letters and digits", false},
		{Definition{Name: "a", Base: "alnum", Alphabet: "ABé"}, "alphabet for base alnum may contain only ASCII letters and digits", false},
		{Definition{Name: "x", Base: "email", Luhn: LuhnValid}, "luhn applies only to base pan", false},
		{Definition{Name: "x", Base: "pan", Alphabet: "0123"}, "alphabet applies only to bases digits, alnum", false},
		{Definition{Name: "x", Base: "email", KeepPrefix: 1}, "keep-prefix applies only to bases pan, ssn, phone, iban, digits, alnum", false},
		{Definition{Name: "x", Base: "name", KeepSuffix: 1}, "keep-suffix applies only to bases pan, ssn, phone, iban, digits, alnum", false},
		{Definition{Name: "x", Base: "opaque", MinLength: 3}, "min-length applies only to bases pan, phone, digits, alnum", false},
		{Definition{Name: "x", Base: "ssn", MaxLength: 3}, "max-length applies only to bases pan, phone, digits, alnum", false},
		{Definition{Name: "x", Base: "pan", TokenizeDomain: true}, "tokenize-domain applies only to base email", false},
		{Definition{Name: "x", Base: "pan", KeepYear: true}, "keep-year applies only to base date", false},
		{Definition{Name: "x", Base: "pan", MinYear: 1900}, "min-year applies only to base date", false},
		{Definition{Name: "x", Base: "pan", MaxYear: 1900}, "max-year applies only to base date", false},
		{Definition{Name: "x", Base: "date", MinYear: -1}, "min-year -1 is outside 1..9999", false},
		{Definition{Name: "x", Base: "date", MaxYear: 10000}, "max-year 10000 is outside 1..9999", false},
		{Definition{Name: "x", Base: "date", MinYear: 2000, MaxYear: 1999}, "min-year 2000 exceeds max-year 1999", false},
		{Definition{Name: "x", Base: "date", MinYear: 2000, MaxYear: 2001}, "years 2000..2001 leave only 731 possible dates (minimum 1000)", false},
	} {
		_, err := New(c.def)
		var de *DefinitionError
		if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDefinition) {
			t.Errorf("New(%+v) = %v, want a *DefinitionError", c.def, err)
			continue
		}
		if de.Problem != c.problem {
			t.Errorf("New(%+v) problem\n got %q\nwant %q", c.def, de.Problem, c.problem)
		}
		if errors.Is(err, ErrUnknownTemplate) != c.unknown {
			t.Errorf("New(%+v): errors.Is(ErrUnknownTemplate) = %v", c.def, !c.unknown)
		}
	}
	_, err := New(Definition{Name: "card", Base: "pan", KeepPrefix: 20})
	if err.Error() != `template "card": keep-prefix 20 leaves no free characters` {
		t.Errorf("message %q", err)
	}
	_, err = New(Definition{Name: "Bad Name", Base: "pan"})
	if err.Error() != `template definition: name must match [a-z][a-z0-9_-]{0,62}` {
		t.Errorf("message %q", err)
	}
}
