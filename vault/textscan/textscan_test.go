package textscan

import (
	"fmt"
	"testing"
)

func scanAll(t *testing.T, region, text string) []string {
	t.Helper()
	s, err := New(Options{DefaultRegion: region})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range s.Scan(text) {
		out = append(out, fmt.Sprintf("%s:%s", f.Entity, text[f.Start:f.End]))
	}
	return out
}

// TestDetects: one positive per entity and format.
func TestDetects(t *testing.T) {
	for _, c := range []struct{ region, text, want string }{
		{"US", "my card 4111 1111 1111 1111 exp 12/27", "pan:4111 1111 1111 1111"},
		{"US", "card 4111-1111-1111-1111.", "pan:4111-1111-1111-1111"},
		{"US", "amex 3782 822463 10005", "pan:3782 822463 10005"},
		{"US", "pay with 5555555555554444 today", "pan:5555555555554444"},
		{"US", "SSN 123-45-6789", "ssn:123-45-6789"},
		{"US", "social security number 123456789", "ssn:123456789"},
		{"US", "mail jane.doe+x@mail.example.co.uk.", "email:jane.doe+x@mail.example.co.uk"},
		{"US", "call (415) 555-0123", "phone:(415) 555-0123"},
		{"US", "call +1 415-555-0123", "phone:+1 415-555-0123"},
		{"DE", "Tel. 030 1234567", "phone:030 1234567"},
		{"DE", "Handy +49 1512 3456789", "phone:+49 1512 3456789"},
		{"FR", "appelez le 06 12 34 56 78", "phone:06 12 34 56 78"},
		{"ES", "llámame al 612 34 56 78", "phone:612 34 56 78"},
		{"US", "IBAN DE89 3704 0044 0532 0130 00", "iban:DE89 3704 0044 0532 0130 00"},
		{"US", "GB82WEST12345698765432", "iban:GB82WEST12345698765432"},
		{"US", "from 192.168.1.20:443", "ip:192.168.1.20"},
		{"US", "host 2001:db8::8a2e:370:7334", "ip:2001:db8::8a2e:370:7334"},
		{"US", "addr fe80::1ff:fe23:4567:890a.", "ip:fe80::1ff:fe23:4567:890a"},
	} {
		got := scanAll(t, c.region, c.text)
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("%s %q: %v, want [%s]", c.region, c.text, got, c.want)
		}
	}
}

// TestHardNegatives: numbers that look like personal data but are not, in context.
func TestHardNegatives(t *testing.T) {
	for _, c := range []struct{ region, text string }{
		{"US", "order number 4111111111111111 shipped"},           // Luhn-valid, IIN-valid: an order
		{"DE", "Bestellnummer 4111 1111 1111 1111 versendet"},     // same, German
		{"FR", "commande 5555555555554444 expédiée"},              // same, French
		{"ES", "pedido 4012888888881881 enviado"},                 // same, Spanish
		{"US", "tracking 1Z999AA10123456784"},                     // glued to letters
		{"US", "tracking 94001118992238501234"},                   // 20 digits: no card, no phone
		{"US", "at 2024-05-12 10:22:01 UTC"},                      // timestamp
		{"DE", "am 12.05.2024 um 10:30"},                          // date
		{"US", "version 1.2.3.4 released"},                        // a version, not an IP
		{"US", "build 10.0.19041.1"},                              // Windows build
		{"US", "upgrade to v2.10.3"},                              // semver
		{"US", "total 1 234 567 USD"},                             // amount shaped like a phone
		{"DE", "Preis 1.299,00 EUR"},                              // price
		{"US", "4111111111111112"},                                // Luhn fails
		{"US", "123456789"},                                       // nine digits without SSN context
		{"US", "SSN 000-12-3456 and 666-12-3456 and 123-00-4567"}, // invalid SSNs
		{"US", "ref ORD-2024-4111111111111111"},                   // identifier tail
		{"US", "DE89 3704 0044 0532 0130 01"},                     // mod-97 fails
		{"US", "12:30:45 and 00:1A:2B:3C:4D:5E"},                  // time, MAC address
		{"DE", "Rufnummer 4155550123"},                            // US number, German region, no +
		{"US", "user@localhost and a@b"},                          // no dotted domain
		{"US", "999.999.999.999"},                                 // not an IPv4
	} {
		if got := scanAll(t, c.region, c.text); len(got) != 0 {
			t.Errorf("%s %q: %v, want nothing", c.region, c.text, got)
		}
	}
}

// TestContextRaisesAndLowers: context words move confidence across min_confidence.
func TestContextRaisesAndLowers(t *testing.T) {
	s, _ := New(Options{MinConfidence: 0.01})
	conf := func(text string) float64 {
		fs := s.Scan(text)
		if len(fs) != 1 {
			t.Fatalf("%q: %v", text, fs)
		}
		return fs[0].Confidence
	}
	plain, card, order := conf("x 4111111111111111"), conf("card 4111111111111111"), conf("order 4111111111111111")
	if !(card > plain && plain > order) || card < 0.9 || order >= DefaultMinConfidence {
		t.Errorf("confidence: card %.2f, plain %.2f, order %.2f", card, plain, order)
	}
	if de := conf("Kreditkartennummer 4111111111111111"); de != card {
		t.Errorf("German compound: %.2f, want %.2f", de, card)
	}
	// A context word belongs to the number right after it, not to the next one.
	if got := scanAll(t, "US", "card 4111 1111 1111 1111, +49 30 12345678"); len(got) != 2 {
		t.Errorf("card word lowered the phone after the card: %v", got)
	}
	hi, _ := New(Options{MinConfidence: 0.9})
	if fs := hi.Scan("x 4111111111111111"); len(fs) != 0 {
		t.Errorf("min_confidence 0.9 kept %v", fs)
	}
}

// TestEntitiesFilter: only the requested entities are reported, and an overlap goes to the
// longer, more specific finding.
func TestEntitiesFilter(t *testing.T) {
	s, _ := New(Options{Entities: SetOf(Email)})
	fs := s.Scan("card 4111 1111 1111 1111, mail a@example.com")
	if len(fs) != 1 || fs[0].Entity != Email {
		t.Errorf("entities: %v", fs)
	}
	if got := scanAll(t, "US", "4111111111111111@example.com"); len(got) != 1 || got[0] != "email:4111111111111111@example.com" {
		t.Errorf("overlap: %v", got)
	}
}

// TestOptionsValidation: bad options are refused with ErrInvalidOptions.
func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{MinConfidence: -0.1}, {MinConfidence: 1.5}, {DefaultRegion: "QQ"}, {DefaultRegion: "DEU"}} {
		if _, err := New(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestTokensCoverFindings: every finding's place is also a token-shaped span, so text
// detokenization finds tokens where findings were (IPs excepted: they become opaque tokens).
func TestTokensCoverFindings(t *testing.T) {
	for _, name := range []string{"tune.jsonl", "heldout.jsonl"} {
		for _, d := range loadCorpus(t, name) {
			s, _ := New(Options{DefaultRegion: d.Region})
			spans := map[Span]bool{}
			for _, sp := range s.Tokens(d.Text) {
				spans[sp] = true
			}
			for _, f := range s.Scan(d.Text) {
				if f.Entity != IP && !spans[Span{f.Start, f.End}] {
					t.Errorf("%s finding %q is not a token span", f.Entity, d.Text[f.Start:f.End])
				}
			}
		}
	}
}
