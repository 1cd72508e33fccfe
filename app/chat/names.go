package chat

import (
	"unicode"
	"unicode/utf8"

	"go.mau.fi/util/confusable"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// A user name is a unique handle, shown as its owner typed it and compared
// only in its canonical form (CanonicalName): two names that a reader could
// take for one another are one name.

// ReservedNames are refused as names, with every name whose canonical form
// is theirs: names that would pass for the operator or address everyone.
var ReservedNames = []string{"admin", "administrator", "system", "parley", "moderator", "root", "support", "everyone", "here"}

var reserved = func() map[string]bool {
	m := make(map[string]bool, len(ReservedNames))
	for _, n := range ReservedNames {
		m[CanonicalName(n)] = true
	}
	return m
}()

// CanonicalName is the form names are compared, stored and indexed in:
// NFKC (ｆｕｌｌｗｉｄｔｈ is fullwidth), case folded (Alice is alice), then the
// UTS #39 confusable skeleton (Cyrillic а is Latin a), folded once more
// because the skeleton's targets are of either case (0 becomes O, so r00t
// is root). The skeleton comes from go.mau.fi/util/confusable, generated
// from Unicode's confusables.txt. It is for comparison only, never for
// display: the canonical form of "mike" is "rnike".
func CanonicalName(name string) string {
	// A Caser keeps state: one per call.
	return cases.Fold().String(confusable.Skeleton(cases.Fold().String(norm.NFKC.String(name))))
}

// ValidateName checks a user name: 1-32 letters of any script, digits,
// _ - and ., with at least one letter or digit; no invisible or filler code
// point; scripts mixed no more than UTS #39's "moderately restrictive" level
// allows; and not a reserved name or a look-alike of one.
func ValidateName(name string) error {
	if !utf8.ValidString(name) {
		return Errorf(EBadRequest, "name must be valid UTF-8")
	}
	n, word := 0, false
	for _, r := range name {
		n++
		switch {
		case r == '_' || r == '-' || r == '.':
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if !IsVisible(r) {
				return Errorf(EBadRequest, "name must not contain invisible or filler characters (U+%04X)", r)
			}
			word = true
		default:
			return Errorf(EBadRequest, "name may contain only letters, digits, _ - and .")
		}
	}
	if n < 1 || n > MaxNameRunes {
		return Errorf(EBadRequest, "name must be 1-%d characters", MaxNameRunes)
	}
	if !word {
		return Errorf(EBadRequest, "name must contain a letter or a digit")
	}
	if !moderatelyRestrictive(name) {
		return Errorf(EBadRequest, "name must not mix scripts that look alike (such as Latin with Cyrillic or Greek)")
	}
	if reserved[CanonicalName(name)] {
		return Errorf(EBadRequest, "name %q is reserved", name)
	}
	return nil
}

// The scripts UTS #39 (section 5.2) lets a moderately restrictive
// identifier combine with Latin and with each other: Han with the Japanese
// kana, with Bopomofo, or with Hangul.
var (
	cjkScripts = map[string]bool{"Han": true, "Hiragana": true, "Katakana": true, "Bopomofo": true, "Hangul": true}
	// lookAlike are the scripts that may not join Latin: their letters
	// pass for Latin ones.
	lookAlike = map[string]bool{"Cyrillic": true, "Greek": true}
)

// moderatelyRestrictive reports whether name's scripts fit UTS #39's
// moderately restrictive level: one script; or Latin with Han and the
// Japanese kana, Han and Bopomofo, or Han and Hangul; or Latin with one
// other script that is neither Cyrillic nor Greek. Common and Inherited
// characters (digits, _ - ., combining marks) go with any script.
func moderatelyRestrictive(name string) bool {
	seen := map[string]bool{}
	for _, r := range name {
		if s := scriptOf(r); s != "" {
			seen[s] = true
		}
	}
	if len(seen) <= 1 {
		return true
	}
	var cjk, others []string
	for s := range seen {
		switch {
		case s == "Latin":
		case cjkScripts[s]:
			cjk = append(cjk, s)
		default:
			others = append(others, s)
		}
	}
	if len(cjk) > 0 {
		// Latin, Han and one East Asian set: Japanese (Hiragana and
		// Katakana), Chinese (Bopomofo) or Korean (Hangul).
		if len(others) > 0 {
			return false
		}
		has := func(s string) bool { return seen[s] }
		switch {
		case has("Hangul"):
			return !has("Hiragana") && !has("Katakana") && !has("Bopomofo")
		case has("Bopomofo"):
			return !has("Hiragana") && !has("Katakana")
		}
		return true
	}
	// Latin with one other script, not a look-alike of it.
	return seen["Latin"] && len(others) == 1 && !lookAlike[others[0]]
}

// scriptOf is r's script, or "" for Common and Inherited (which go with
// any script).
func scriptOf(r rune) string {
	if unicode.In(r, unicode.Common, unicode.Inherited) {
		return ""
	}
	for name, table := range unicode.Scripts {
		if unicode.Is(table, r) {
			return name
		}
	}
	return ""
}
