package processors

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// MaxACHNameChars is the width of the NACHA individual name field.
const MaxACHNameChars = 22

// latinLetters are Latin letters that Unicode does not decompose into a
// base letter and a combining mark, written the way they are commonly
// transliterated into ASCII.
var latinLetters = map[rune]string{
	'ø': "o", 'Ø': "O", 'ß': "ss", 'ẞ': "SS", 'ł': "l", 'Ł': "L", 'æ': "ae", 'Æ': "AE",
	'œ': "oe", 'Œ': "OE", 'đ': "d", 'Đ': "D", 'ð': "d", 'Ð': "D", 'þ': "th", 'Þ': "Th",
	'ı': "i", 'ħ': "h", 'Ħ': "H", 'ŧ': "t", 'Ŧ': "T", 'ŀ': "l", 'Ŀ': "L", 'ĸ': "k",
	'ŉ': "n", 'ſ': "s", 'ƒ': "f", 'ŋ': "n", 'Ŋ': "N", 'ĳ': "ij", 'Ĳ': "IJ",
	'‘': "'", '’': "'", '‚': ",", '“': "\"", '”': "\"", '–': "-", '—': "-",
}

// foldLatin decomposes (NFKD) and removes combining marks
// (golang.org/x/text). A chained transformer keeps state between calls, so
// each call gets its own: the worker folds names of concurrent jobs.
func foldLatin() transform.Transformer {
	return transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
}

// ACHText writes s in a NACHA alphanumeric field of width n characters:
// Latin letters are transliterated to ASCII (é → e, ø → o, ß → ss, Ł → L),
// runs of white space become one space, and anything else outside printable
// ASCII (emoji, other scripts) is dropped. The result is cut to n
// characters after transliteration. dropped reports whether a letter or
// digit had to be dropped, i.e. whether the text could not be written
// faithfully.
func ACHText(s string, n int) (out string, dropped bool) {
	folded, _, err := transform.String(foldLatin(), s)
	if err != nil {
		folded = s
	}
	var b strings.Builder
	space := false
	emit := func(t string) {
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteString(t)
	}
	for _, r := range folded {
		switch {
		case r == ' ' || unicode.IsSpace(r):
			space = true
		case r >= '!' && r <= '~':
			emit(string(r))
		case latinLetters[r] != "":
			emit(latinLetters[r])
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			dropped = true
		}
	}
	out = b.String()
	if len(out) > n { // ASCII now: bytes are characters
		out = strings.TrimSpace(out[:n])
	}
	return out, dropped
}

// ACHName is the account holder's name as the NACHA individual name field
// carries it (ACHText, 22 characters). ok is false when the name cannot be
// written: nothing is left, or a letter of a script that has no ASCII
// transliteration (Cyrillic, CJK …) would be dropped.
func ACHName(s string) (name string, ok bool) {
	name, dropped := ACHText(s, MaxACHNameChars)
	return name, name != "" && !dropped
}

// TruncateChars cuts s to at most n characters (not bytes), never inside
// a UTF-8 sequence.
func TruncateChars(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// RoutingNumberProblem says what is wrong with an ABA routing transit
// number, or "" when it is valid: nine digits, a first two digits in a
// range the Federal Reserve assigns (00–12 government and banks, 21–32
// thrifts, 61–72 electronic transactions, 80 traveler's cheques), and the
// check digit (weights 3, 7, 1).
func RoutingNumberProblem(rtn string) string {
	if len(rtn) != 9 {
		return "must be exactly 9 digits"
	}
	for i := 0; i < 9; i++ {
		if rtn[i] < '0' || rtn[i] > '9' {
			return "must be exactly 9 digits"
		}
	}
	switch p := int(rtn[0]-'0')*10 + int(rtn[1]-'0'); {
	case p <= 12, p >= 21 && p <= 32, p >= 61 && p <= 72, p == 80:
	default:
		return "must start with a Federal Reserve routing symbol (00-12, 21-32, 61-72 or 80)"
	}
	w := [9]int{3, 7, 1, 3, 7, 1, 3, 7, 1}
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(rtn[i]-'0') * w[i]
	}
	if sum%10 != 0 {
		return "has an invalid ABA check digit"
	}
	return ""
}

// MaskedLastFour is what payrail shows of a bank account number: never
// more than its last four characters, and never so many that fewer than
// four stay hidden. An 8-character or longer number shows its last four, a
// 6-character one its last two, and a number of 4 characters or fewer
// shows nothing ("").
func MaskedLastFour(s string) string {
	show := len(s) - 4
	if show > 4 {
		show = 4
	}
	if show <= 0 {
		return ""
	}
	return s[len(s)-show:]
}
