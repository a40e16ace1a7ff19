package textscan

// Context words: a word before a candidate (or just after it) that names the entity raises
// its confidence; one that names something else (an order, a tracking number, a price, a
// version) lowers it. The nearest such word decides.

type ctxResult uint8

const (
	ctxNone ctxResult = iota
	ctxPositive
	ctxNegative
)

// negativePenalty is what a negative context word takes off a finding's confidence.
const negativePenalty = 0.5

// Context windows, in bytes and words.
const (
	ctxBefore      = 48
	ctxAfter       = 2 // only a word right after: a unit or currency (1 234 567 EUR)
	ctxWordsBefore = 5
	ctxWordsAfter  = 1
)

// ctxWords maps a lower-case word (or, for compounds, its stem) to the entities it names
// (bits 1<<e) and, shifted by 8, the entities it argues against.
var ctxWords = func() map[string]uint16 {
	m := map[string]uint16{}
	pos := func(e Entity, words ...string) {
		for _, w := range words {
			m[w] |= 1 << e
		}
	}
	neg := func(words []string, es ...Entity) {
		for _, w := range words {
			for _, e := range es {
				m[w] |= 1 << (8 + e)
			}
		}
	}
	pos(PAN, "card", "cards", "credit", "debit", "visa", "mastercard", "amex", "cc", "pan", "cardholder",
		"karte", "kreditkarte", "kartennummer", "kreditkartennummer", "carte", "bancaire", "cb",
		"tarjeta", "crédito", "débito", "credito", "debito")
	pos(SSN, "ssn", "social", "security", "ss#", "sozialversicherungsnummer", "sécurité", "sociale",
		"seguridad", "seguro", "ssn#", "taxpayer", "tin")
	pos(Phone, "phone", "tel", "telephone", "mobile", "cell", "call", "called", "calling", "dial", "fax", "whatsapp", "sms", "text",
		"telefon", "telefonnummer", "handy", "mobil", "mobilnummer", "handynummer", "anrufen", "anruf", "rufnummer", "erreichbar", "ruf", "rufen",
		"téléphone", "tél", "portable", "appeler", "appelez", "joignable", "numéro", "joindre",
		"teléfono", "telefono", "móvil", "movil", "llamar", "llame", "llámame", "llamarme", "llamó", "celular", "contacto", "reach")
	pos(IBAN, "iban", "konto", "kontonummer", "bankverbindung", "account", "compte", "cuenta", "rib")
	pos(IP, "ip", "ipv4", "ipv6", "address", "host", "server", "adresse", "dirección", "client", "from", "src", "dst",
		"login", "connexion", "verbindung", "conexión")
	orders := []string{"order", "orders", "invoice", "tracking", "shipment", "parcel", "ref", "reference",
		"ticket", "case", "id", "sku", "serial", "isbn", "ean", "upc", "barcode",
		"bestellung", "bestellnummer", "auftrag", "auftragsnummer", "rechnung", "rechnungsnummer",
		"sendung", "sendungsnummer", "paket", "kundennummer", "artikel", "artikelnummer",
		"commande", "facture", "suivi", "colis", "référence", "dossier",
		"pedido", "factura", "seguimiento", "envío", "paquete", "referencia", "expediente"}
	money := []string{"price", "total", "amount", "eur", "usd", "gbp", "euro", "euros", "dollars", "$", "€", "£",
		"preis", "betrag", "summe", "gesamt", "prix", "montant", "précio", "precio", "importe", "coste", "cost"}
	times := []string{"date", "datum", "fecha", "timestamp", "since", "seit", "depuis", "desde"}
	versions := []string{"version", "v", "ver", "release", "build", "versión", "versao", "firmware", "package", "app"}
	neg(orders, PAN, SSN, Phone)
	neg(money, PAN, SSN, Phone)
	neg(times, Phone)
	neg(versions, IP, Phone)
	// Words that name one entity but another in context ("card" also rules out a phone).
	for w, v := range m {
		for e := Entity(1); e <= numEntities; e++ {
			if v&(1<<e) != 0 {
				for o := Entity(1); o <= numEntities; o++ {
					if o != e && o != Email && o != IP && o != IBAN && e != IP && v&(1<<o) == 0 {
						m[w] |= 1 << (8 + o)
					}
				}
			}
		}
	}
	// A word both names and argues against an entity (client: IP host, and customer): keep
	// the positive reading.
	for w, v := range m {
		m[w] = v &^ ((v & 0xff) << 8)
	}
	return m
}()

// stemLens are the lengths of the keys of ctxWords, longest first: a long word is also looked
// up by its prefixes of these lengths (German compounds: Kreditkartennummer).
var stemLens = func() []int {
	seen := map[int]bool{}
	var ls []int
	for w := range ctxWords {
		if n := len(w); n >= 5 && !seen[n] {
			seen[n] = true
			ls = append(ls, n)
		}
	}
	for i := range ls { // longest first
		for j := i + 1; j < len(ls); j++ {
			if ls[j] > ls[i] {
				ls[i], ls[j] = ls[j], ls[i]
			}
		}
	}
	return ls
}()

// context classifies the words around [start, end) for e: the nearest word before (up to
// ctxWordsBefore words within ctxBefore bytes) that names or argues against e, else the
// first ctxWordsAfter words after.
func (sc *scan) context(e Entity, start, end int) ctxResult {
	t := sc.text
	var buf [32]byte
	i, words := start, 0
	for words < ctxWordsBefore && i > 0 && start-i < ctxBefore {
		for i > 0 && !ctxChar(t[i-1]) && start-i < ctxBefore {
			if t[i-1] == '\n' || t[i-1] == '.' && i < start && t[i] == ' ' && !abbrev(t[:i-1]) {
				return sc.contextAfter(e, end) // the sentence or line starts here
			}
			if isDigit(t[i-1]) {
				return sc.contextAfter(e, end) // words before another number are that number's
			}
			i--
		}
		j := i
		for i > 0 && ctxChar(t[i-1]) && j-i < len(buf) {
			i--
		}
		if i == j {
			break
		}
		if j < len(t) && isDigit(t[j]) || i > 0 && isDigit(t[i-1]) {
			continue // part of a code (v7, 10am), not a word
		}
		words++
		if r := lookup(buf[:0], t[i:j], e); r != ctxNone {
			sc.ops += j - i
			return r
		}
	}
	return sc.contextAfter(e, end)
}

// contextAfter classifies the word right after a candidate (a unit or currency).
func (sc *scan) contextAfter(e Entity, end int) ctxResult {
	t := sc.text
	var buf [32]byte
	i, words := end, 0
	for words < ctxWordsAfter && i < len(t) && i-end < ctxAfter {
		for i < len(t) && t[i] == ' ' && i-end < ctxAfter {
			i++
		}
		j := i
		for i < len(t) && ctxChar(t[i]) && i-j < len(buf) {
			i++
		}
		if i == j {
			break
		}
		words++
		if r := lookup(buf[:0], t[j:i], e); r != ctxNone {
			return r
		}
	}
	sc.ops += ctxBefore + ctxAfter
	return ctxNone
}

// ctxChar reports the bytes of context words: letters (any non-ASCII byte counts), and the
// currency signs and # that stand as words.
func ctxChar(c byte) bool {
	return classes[c]&(cUpper|cLower) != 0 || c >= 0x80 || c == '$' || c == '#'
}

// lookup classifies one word for e.
func lookup(buf []byte, w string, e Entity) ctxResult {
	for k := 0; k < len(w); k++ {
		c := w[k]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	if v, ok := ctxWords[string(buf)]; ok {
		if r := classify(v, e); r != ctxNone {
			return r
		}
	}
	for _, n := range stemLens {
		if n < len(buf) {
			if v, ok := ctxWords[string(buf[:n])]; ok {
				if r := classify(v, e); r != ctxNone {
					return r
				}
			}
		}
	}
	return ctxNone
}

func classify(v uint16, e Entity) ctxResult {
	switch {
	case v&(1<<e) != 0:
		return ctxPositive
	case v&(1<<(8+e)) != 0:
		return ctxNegative
	}
	return ctxNone
}

// abbrev reports whether t ends with a word of at most three letters (Tel, Nr, tél): its
// dot is an abbreviation's, not a sentence's end.
func abbrev(t string) bool {
	n := 0
	for n < len(t) && n <= 4 && ctxChar(t[len(t)-1-n]) {
		n++
	}
	return n > 0 && n <= 4 // tél is four bytes
}
