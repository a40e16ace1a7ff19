// Package textscan finds personal data in free text: payment card numbers, US social
// security numbers, e-mail addresses, telephone numbers, IBANs and IP addresses. It is pure
// logic (no store, no crypto, no vault): the vault tokenizes what it finds.
//
// # Basics
//
// [New] makes a [Scanner] from [Options] (entities, minimum confidence, default phone
// region). [Scanner.Scan] returns [Finding]s (entity, byte offsets, confidence) in order and
// without overlaps. [Scanner.Tokens] returns the places where a token of the templates the
// vault uses for text may be, for detokenization.
//
// One hand-written pass reads the text byte by byte and dispatches on the byte's class:
//
//	digits        a run of digit groups joined by single spaces, dashes or dots (and one
//	              pair of parentheses, a leading +): cards, SSNs, phones, IPv4
//	letters       a word: an IBAN (two capitals and two digits), an IPv6 address (hex and :)
//	@             an e-mail address: the local part before it, the domain after
//
// Candidates are validated cheaply before anything expensive: cards by length, issuer prefix
// (IIN) and the Luhn check; SSNs by the SSA's area, group and serial rules; IBANs by the
// registry length of their country and mod-97; IP addresses by net/netip. Telephone numbers
// are validated by libphonenumber (github.com/nyaruka/phonenumbers), which costs microseconds
// (regular expressions), so it runs only on digit runs that pass a pre-filter: 7 to 15
// digits, not shaped like a date, the region's trunk prefix (0 in most of Europe) or an
// international prefix (+, 00), separators or context words, and a confidence that can still
// reach the minimum. The number is built from its digits (libphonenumber's Parse costs 40-60
// µs) and checked with IsPossibleNumber, then against the region's general national-number
// pattern from libphonenumber's metadata (the union of its number types), compiled once on
// first use: one regular expression instead of IsValidNumberForRegion's up to ten, built per
// call. The compiled patterns are the package's only lazily built value, immutable once built.
//
// Context words before a candidate (or just after it), in English, German, French and
// Spanish, move its confidence: "card", "Karte", "carte", "tarjeta" raise a card; "order",
// "Bestellnummer", "commande", "pedido", prices and versions lower cards, SSNs, phones and IP
// addresses. Nine digits without dashes are an SSN only with an SSN word near.
//
// Overlaps are resolved by length, then specificity (IBAN, card, e-mail, IP, SSN, phone),
// then confidence.
//
// # Caveats
//
// Names, postal addresses and other free-form data are not detected: that needs a language
// model, not patterns. Phone numbers written as bare digits without separators or a context
// word are not reported (too many order numbers look the same). Every reader is bounded (a
// run has at most 32 groups, a local part 64 bytes, a domain 253), so the pass is linear in
// the text's length. Nothing is cached between calls.
package textscan
