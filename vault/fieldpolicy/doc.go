// Package fieldpolicy tokenizes fields of JSON documents chosen by JSON paths: the everyday job
// before a payload goes to a vendor. It is pure logic: no I/O, no crypto, no store. The
// vault extracts the selected strings, (de)tokenizes them, and puts the results back.
//
// # Basics
//
// A [Policy] maps JSON paths to template names, in order:
//
//	$.customer.email: email
//	$.payment.card: pan
//	$.items[*].note: opaque
//
// [ParsePolicy] reads it from YAML (or JSON, which is YAML) and validates every path and
// template name; [Policy.Compile] builds the matcher, a trie of the rules' steps.
// [Compiled.Extract] parses a batch of documents and returns every selected string as a
// [Field] (document index, concrete path such as $.items[2].note, template, value), in
// document order, and every selected value of the wrong type as a [FieldError].
// [Compiled.Replace] takes the fields (all or some) and one replacement each and returns the
// documents with only those strings changed. Detokenization is the same with token
// templates: Extract the tokens, detokenize them, Replace them with the values.
//
// Paths are a strict subset of JSONPath (RFC 9535):
//
//	$                 the document (a path starts with it)
//	.name             a member; ASCII letters, digits, _ and - and any non-ASCII
//	                  character, not starting with a digit or -
//	['name'] ["name"] a member by any non-empty name (dots, spaces, ...); escapes \\ \'
//	                  \" \/ \b \f \n \r \t \uXXXX
//	[n]               array element n (0-based, no sign, no leading zeros)
//	[*]               every element of an array
//	.*                every member of an object
//
// nested to at most [MaxDepth] steps, e.g. $.orders[*].items[*]['card number']. Recursive
// descent (..), filters ([?...]), script expressions, slices ([1:3]), unions ([0,1]),
// negative indexes, empty names, whitespace and anything after the last step are refused
// with a [PathError] naming the path, the problem and its position.
//
// A hand-written subset rather than a JSONPath library: the vault needs the selected
// values' exact locations to splice replacements into the original bytes, a library
// evaluates on decoded values (losing member order and number text) and accepts
// constructs (recursive descent, filters) whose reach is hard to audit in a PII policy.
// The subset is small enough to parse strictly and test exhaustively.
//
// Two rules whose paths are the same however spelled ($.a.b, $['a']["b"]) are refused by
// Compile. Rules whose paths differ but meet on a value ($.items[*].card and
// $.items[0].card) are allowed: the first rule in the policy wins, and the value is
// extracted once.
//
// Documents are read as strict RFC 8259 JSON, on the raw bytes: Replace splices the new
// strings into the original text, so member order, unknown members, number text (1.50
// stays 1.50), whitespace and the escapes of untouched strings are kept byte for byte.
// Replacements are written with only ", \, control characters, U+2028 and U+2029 escaped.
//
// # Caveats
//
// Only strings are selected. A selected number, boolean, object or array is a FieldError,
// never converted: a card number sent as a JSON number may already have lost digits, so it
// must be sent as a string. A value on the way that has the wrong shape (a string where
// $.customer.email needs $.customer to be an object, an object where [*] needs an array) is
// a FieldError too, since it may hold the data the rule meant to protect. null values and
// missing members or out-of-range indexes are skipped silently. [*] matches arrays only and
// .* objects only.
//
// Documents are refused (a [DocError], for the whole batch) when they are not valid JSON,
// are nested deeper than [MaxDepth], contain invalid UTF-8 or unpaired surrogate escapes
// (\ud800), or repeat a member name in an object: parsers disagree on which duplicate wins,
// and a vendor reading the one the vault did not tokenize would see the raw value. A leading
// byte order mark is refused as JSON requires.
//
// A batch selects at most [MaxFields] values (FieldErrors included); the caller bounds the
// documents' size. A policy has at most [MaxRules] rules of at most [MaxPathLen] bytes.
// Member and element matching is by trie, so the cost is linear in the documents' size for
// policies without wildcards and grows with overlapping wildcards.
//
// No error contains a document value: errors name the document by index and the place by
// byte offset or concrete path. Paths are made of member names, so names (not values) do
// appear in errors and in Field.Path; a document keyed by personal data (an object whose
// member names are e-mail addresses) exposes those names in paths. Names that are not plain
// ASCII identifiers are written bracketed and quoted, with control characters escaped.
//
// The template name [Scan] ("scan") marks free text: the vault scans the string for personal
// data (vault/textscan) and tokenizes what it finds in place, rather than the whole string.
//
// Template names are checked for syntax only; whether they exist is the vault's business.
// A Compiled is immutable and safe for concurrent use.
package fieldpolicy
