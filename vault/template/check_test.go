package template

import (
	"errors"
	"strings"
	"testing"
)

type checkCase struct {
	value string
	rule  string // "" for a valid value
}

// checkTables lists valid values and invalid values with the rule they must fail, per
// built-in template.
var checkTables = map[string][]checkCase{
	"pan": {
		{"411111111111", ""},        // shortest
		{"4111111111111111111", ""}, // longest
		{"4111111111111111", ""},    // Luhn-valid
		{"4111111111111112", ""},    // Luhn-invalid test card: fine
		{"4111 1111 1111 1111", ""}, // spaces
		{"4111-1111-1111-1111", ""}, // dashes
		{"3782 822463 10005", ""},   // Amex grouping
		{"4 1 1 1 1 1 1 1 1 1 1 1", ""},
		{"41111111111", "must have 12 to 19 digits"},
		{"41111111111111111111", "must have 12 to 19 digits"},
		{"", "must have 12 to 19 digits"},
		{"4111  1111 1111 1111", "separators must be single"},
		{"4111 -1111 1111 1111", "separators must be single"},
		{"4111 1111-1111 1111", "must not mix spaces and dashes"},
		{" 4111111111111111", "must start and end with a digit"},
		{"4111111111111111-", "must start and end with a digit"},
		{"4111.1111.1111.1111", "only digits, with single spaces or dashes between groups, are allowed"},
		{"４１１１１１１１１１１１", "only digits, with single spaces or dashes between groups, are allowed"},
		{"4111111111111111\x00", "only digits, with single spaces or dashes between groups, are allowed"},
		{"4111\xff111111111111", "not valid UTF-8"},
		{strings.Repeat("4", 65), "longer than 64 bytes"},
	},
	"ssn": {
		{"123-45-6789", ""},
		{"123456789", ""},
		{"000-00-0000", ""}, // values need not be issuable
		{"987-65-4321", ""}, // ITIN-like
		{"123-456-789", "must be NNN-NN-NNNN or nine digits"},
		{"12345678", "must be NNN-NN-NNNN or nine digits"},
		{"1234567890", "must be NNN-NN-NNNN or nine digits"},
		{"123 45 6789", "must be NNN-NN-NNNN or nine digits"},
		{"12a-45-6789", "must be NNN-NN-NNNN or nine digits"},
		{"", "must be NNN-NN-NNNN or nine digits"},
		{"123-45-678\xff", "not valid UTF-8"},
		{"123-45-67890", "longer than 11 bytes"},
	},
	"email": {
		{"a@b.co", ""}, // shortest sensible
		{"john.doe@example.com", ""},
		{"First.Last+tag@Sub.Example.ORG", ""},
		{"o'brien!x#y@example.co.uk", ""},
		{"user@xn--p1ai.xn--p1ai", ""},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com", ""}, // 254 bytes
		{strings.Repeat("a", 65) + "@example.com", "local part longer than 64 bytes"},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 58) + ".com", "longer than 254 bytes"},
		{"example.com", "must contain exactly one @"},
		{"a@b@example.com", "must contain exactly one @"},
		{"@example.com", "local part must not be empty"},
		{".john@example.com", "local part must not start or end with a dot"},
		{"john.@example.com", "local part must not start or end with a dot"},
		{"jo..hn@example.com", "local part must not contain consecutive dots"},
		{"jo hn@example.com", "local part may contain only letters, digits and !#$%&'*+-/=?^_`{|}~."},
		{`"jo hn"@example.com`, "local part may contain only letters, digits and !#$%&'*+-/=?^_`{|}~."},
		{"+-_@example.com", "local part must contain a letter or digit"},
		{"josé@example.com", "must be ASCII (write international domains in punycode)"},
		{"john@bücher.de", "must be ASCII (write international domains in punycode)"},
		{"john@", "domain must not be empty"},
		{"john@localhost", "domain must contain a dot"},
		{"john@example..com", "domain labels must have 1 to 63 characters"},
		{"john@.example.com", "domain labels must have 1 to 63 characters"},
		{"john@example.com.", "domain labels must have 1 to 63 characters"},
		{"john@" + strings.Repeat("x", 64) + ".com", "domain labels must have 1 to 63 characters"},
		{"john@exa_mple.com", "domain may contain only letters, digits, hyphens and dots"},
		{"john@[192.168.0.1]", "domain may contain only letters, digits, hyphens and dots"},
		{"john@-example.com", "domain labels must not start or end with a hyphen"},
		{"john@example-.com", "domain labels must not start or end with a hyphen"},
		{"john@192.168.0.1", "top-level domain must not be all digits"},
		{"jo\xffhn@example.com", "not valid UTF-8"},
	},
	"phone": {
		{"+14155550123", ""},
		{"(415) 555-0123", ""},
		{"415-555-0123", ""},
		{"415.555.0123", ""},
		{"020 7946 0958", ""},
		{"+44 20 7946 0958", ""},
		{"+1 (415) 555-0123", ""},
		{"+44 (0) 20 7946 0958", ""},
		{"5550123", ""},          // 7 digits
		{"+123456789012345", ""}, // 15 digits
		{"555012", "must have 7 to 15 digits"},
		{"+1234567890123456", "must have 7 to 15 digits"},
		{"", "must have 7 to 15 digits"},
		{"+0123456789", "country code must not start with 0"},
		{"+", "+ must be followed by the country code"},
		{"+ 1 415 555 0123", "+ must be followed by the country code"},
		{"1+4155550123", "+ is allowed only at the start"},
		{"415  555 0123", "separators must be single and between digits"},
		{" 4155550123", "separators must be single and between digits"},
		{"4155550123 ", "must end with a digit"},
		{"(415 555-0123", "parentheses must be balanced"},
		{"415) 555-0123", "parentheses must be balanced"},
		{"(4(15)) 555-0123", "parentheses must not nest"},
		{"() 4155550123", "parentheses must enclose digits"},
		{"415-555-0123 x12", "only digits, a leading +, spaces, dashes, dots and parentheses are allowed"},
		{"415/555/0123", "only digits, a leading +, spaces, dashes, dots and parentheses are allowed"},
		{"415\xff5550123", "not valid UTF-8"},
		{strings.Repeat("1", 33), "longer than 32 bytes"},
	},
	"name": {
		{"J", ""},
		{"John Smith", ""},
		{"Jean-Luc Picard", ""},
		{"O'Brien", ""},
		{"O’Brien", ""},
		{"J. R. R. Tolkien", ""},
		{"José Ørsted-Åberg", ""},
		{"Straße", ""},
		{"Иван Петров", ""},
		{"李小龍", ""},
		{"Jose\u0301", ""}, // combining acute
		{strings.Repeat("a", 256), ""},
		{strings.Repeat("é", 256), ""},
		{strings.Repeat("a", 257), "longer than 256 characters"},
		{strings.Repeat("é", 257), "longer than 256 characters"},
		{strings.Repeat("a", 1025), "longer than 1024 bytes"},
		{"", "must contain a letter"},
		{" - ", "must contain a letter"},
		{"John Smith 3rd", "must not contain digits"},
		{"Louis XIV Ⅳ", "must not contain digits"},
		{"John\tSmith", "must not contain control characters"},
		{"John\x00", "must not contain control characters"},
		{"John & Jane", "only letters, spaces, hyphens, apostrophes and periods are allowed"},
		{"John, Smith", "only letters, spaces, hyphens, apostrophes and periods are allowed"},
		{"John😀", "only letters, spaces, hyphens, apostrophes and periods are allowed"},
		{"\u0301John", "combining marks must follow a letter"},
		{"Jo\xffhn", "not valid UTF-8"},
	},
	"date": {
		{"1984-06-15", ""},
		{"0001-01-01", ""},
		{"9999-12-31", ""},
		{"2000-02-29", ""},
		{"2024-02-29", ""},
		{"1900-02-29", "not a valid calendar date"},
		{"2023-02-29", "not a valid calendar date"},
		{"2023-04-31", "not a valid calendar date"},
		{"2023-13-01", "not a valid calendar date"},
		{"2023-00-10", "not a valid calendar date"},
		{"2023-01-00", "not a valid calendar date"},
		{"0000-01-01", "not a valid calendar date"},
		{"84-06-15", "must be YYYY-MM-DD"},
		{"1984/06/15", "must be YYYY-MM-DD"},
		{"1984-6-15x", "must be YYYY-MM-DD"},
		{"19a4-06-15", "must be YYYY-MM-DD"},
		{"+1984-06-1", "must be YYYY-MM-DD"},
		{"", "must be YYYY-MM-DD"},
		{"1984-06-15T00:00:00Z", "longer than 10 bytes"},
		{"1984-06-1\xff", "not valid UTF-8"},
	},
	"iban": {
		{"DE89370400440532013000", ""},
		{"DE89 3704 0044 0532 0130 00", ""},
		{"GB29NWBK60161331926819", ""},
		{"NO9386011117947", ""},                   // shortest (15)
		{"LC55HEMM000100010012001200023015", ""},  // 32
		{"RU0204452560040702810412345678901", ""}, // 33
		{"de89370400440532013000", "letters must be upper case"},
		{"DE88370400440532013000", "check digits do not match (mod-97)"},
		{"DE89370400440532013001", "check digits do not match (mod-97)"},
		{"DE8937040044053201300", "length does not match the country"},
		{"NO938601111794", "must have 15 to 34 characters"},
		{"XX" + strings.Repeat("1", 33), "must have 15 to 34 characters"},
		{"1E89370400440532013000", "must start with a two-letter country code"},
		{"DEAB370400440532013000", "check digits must be two digits"},
		{"DE89  3704 0044 0532 0130 00", "spaces must be single and between characters"},
		{" DE89370400440532013000", "spaces must be single and between characters"},
		{"DE89-3704-0044-0532-0130-00", "only upper-case letters, digits and single spaces are allowed"},
		{"DE89370400440532013\xff00", "not valid UTF-8"},
		{strings.Repeat("A", 65), "longer than 64 bytes"},
	},
	"digits": {
		{"0", ""},
		{"1234", ""},
		{strings.Repeat("9", 64), ""},
		{"", "must have 1 to 64 digits"},
		{strings.Repeat("9", 65), "must have 1 to 64 digits"},
		{"12 34", "only digits 0-9 are allowed"},
		{"12a4", "only digits 0-9 are allowed"},
		{"١٢٣", "only digits 0-9 are allowed"},
		{"12\xff", "not valid UTF-8"},
	},
	"alnum": {
		{"a", ""},
		{"AbC123xyZ", ""},
		{strings.Repeat("Z", 64), ""},
		{"", "must have 1 to 64 characters"},
		{strings.Repeat("Z", 65), "must have 1 to 64 characters"},
		{"ab-12", "only ASCII letters and digits are allowed"},
		{"abcé", "only ASCII letters and digits are allowed"},
		{"ab\xff", "not valid UTF-8"},
	},
	"opaque": {
		{"x", ""},
		{"any text at all: é € 𝄞 \x00 \n", ""},
		{strings.Repeat("x", 64<<10), ""},
		{"", "must not be empty"},
		{strings.Repeat("x", 64<<10+1), "longer than 65536 bytes"},
		{"ab\xffcd", "not valid UTF-8"},
		{"\xed\xa0\x80", "not valid UTF-8"}, // surrogate
	},
}

func TestCheckTables(t *testing.T) {
	for _, name := range BuiltinNames() {
		tm := mustBuiltin(name)
		cases := checkTables[name]
		if len(cases) == 0 {
			t.Errorf("no check table for %s", name)
		}
		for _, c := range cases {
			err := tm.Check(c.value)
			short := c.value
			if len(short) > 40 {
				short = short[:40] + "..."
			}
			if c.rule == "" {
				if err != nil {
					t.Errorf("%s: Check(%q) = %v, want nil", name, short, err)
				}
				continue
			}
			var ve *ValueError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidValue) {
				t.Errorf("%s: Check(%q) = %v, want a *ValueError wrapping ErrInvalidValue", name, short, err)
				continue
			}
			if want := name + ": " + c.rule; err.Error() != want || ve.Template != name || ve.Rule != c.rule {
				t.Errorf("%s: Check(%q) = %q, want %q", name, short, err, want)
			}
			if len(c.value) >= 4 && strings.Contains(err.Error(), c.value) {
				t.Errorf("%s: error %q contains the value", name, err)
			}
			// Candidate and Mask refuse the value the same way.
			if _, cerr := tm.Candidate(newKeys("d", name), c.value, 0, nil); cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("%s: Candidate(%q) error %v, want %v", name, short, cerr, err)
			}
			if m := tm.Mask(c.value); m != "****" {
				t.Errorf("%s: Mask(invalid %q) = %q, want ****", name, short, m)
			}
		}
	}
}

// TestCheckCustomRules covers rules that only custom definitions produce.
func TestCheckCustomRules(t *testing.T) {
	for _, c := range []struct {
		def   Definition
		value string
		err   string
	}{
		{Definition{Name: "card16", Base: "pan", MinLength: 16, MaxLength: 16}, "411111111111111", "card16: must have 16 digits"},
		{Definition{Name: "card16", Base: "pan", MinLength: 16, MaxLength: 16}, "4111111111111111", ""},
		{Definition{Name: "dob", Base: "date", MinYear: 1900, MaxYear: 2099}, "1899-12-31", "dob: year must be between 1900 and 2099"},
		{Definition{Name: "dob", Base: "date", MinYear: 1900, MaxYear: 2099}, "2099-12-31", ""},
		{Definition{Name: "acct", Base: "digits", MinLength: 8, MaxLength: 12}, "1234567", "acct: must have 8 to 12 digits"},
		{Definition{Name: "acct", Base: "digits", MinLength: 8, MaxLength: 12}, "1234567890123", "acct: must have 8 to 12 digits"},
		{Definition{Name: "ref", Base: "alnum", Alphabet: "ABC123"}, "xyz789", ""}, // values need not use the alphabet
		{Definition{Name: "tel", Base: "phone", MinLength: 10}, "555-0123", "tel: must have 10 to 15 digits"},
	} {
		tm, err := New(c.def)
		if err != nil {
			t.Fatal(err)
		}
		err = tm.Check(c.value)
		if c.err == "" && err != nil || c.err != "" && (err == nil || err.Error() != c.err) {
			t.Errorf("%s: Check(%q) = %v, want %q", c.def.Name, c.value, err, c.err)
		}
	}
}

// TestErrorsNeverContainValues feeds distinctive invalid values to every template (built-in
// and custom) and checks that no error message contains any 4-byte piece of them.
func TestErrorsNeverContainValues(t *testing.T) {
	values := []string{
		"SECRET-9876543210-SECRET", "4111111111111111999", "john.q.public@@example.com", "+9997654321098765",
		"Zaphod Beeblebrox 42", "2023-02-30", "DE00370400440532013000", "Qx7Qx7Qx7Qx7-Qx7", "\xffSECRETSECRET",
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
	}
	for _, tm := range propertyTemplates(t) {
		for _, v := range values {
			err := tm.Check(v)
			if err == nil {
				continue
			}
			msg := err.Error()
			for i := 0; i+4 <= len(v); i++ {
				if piece := v[i : i+4]; strings.Contains(msg, piece) && !strings.Contains(tm.Name(), piece) {
					t.Errorf("%s: error %q contains %q from the value", tm.Name(), msg, piece)
					break
				}
			}
		}
	}
}
