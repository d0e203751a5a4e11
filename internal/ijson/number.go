package ijson

import (
	"errors"
	"math"
	"strconv"
)

// errNonFinite is returned for NaN and ±Inf, which have no JSON form (RFC 8785 §3.2.2.3).
var errNonFinite = errors.New("NaN and Infinity cannot be represented in JSON")

// appendNumber appends f as ECMAScript's Number.prototype.toString renders it, which is the number
// format RFC 8785 prescribes (§3.2.2.3): the shortest decimal that reads back as the same double,
// written without exponent when the decimal exponent is in [-6, 21), -0 written as 0.
//
// strconv produces the same shortest, correctly rounded digits that ECMAScript requires; only the
// layout differs, so this function takes strconv's digits and exponent and lays them out by the
// rules of ECMA-262 §6.1.6.1.20 (Number::toString).
func appendNumber(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, errNonFinite
	}
	if f == 0 { // both +0 and -0
		return append(dst, '0'), nil
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	var buf [32]byte
	digits, n := shortestDigits(buf[:0], f)
	k := len(digits)
	switch {
	case k <= n && n <= 21: // integer: digits then zeros
		dst = append(dst, digits...)
		for i := k; i < n; i++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21: // decimal point inside the digits
		dst = append(dst, digits[:n]...)
		dst = append(dst, '.')
		dst = append(dst, digits[n:]...)
	case -6 < n && n <= 0: // 0.000ddd
		dst = append(dst, '0', '.')
		for i := n; i < 0; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	default: // exponent form d.ddde±x
		dst = append(dst, digits[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, digits[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst, nil
}

// shortestDigits returns the shortest round-tripping decimal digits of the positive finite f and
// the position n of the decimal point, so that f = 0.d1d2…dk × 10^n (ECMA-262's k and n).
func shortestDigits(buf []byte, f float64) ([]byte, int) {
	b := strconv.AppendFloat(buf, f, 'e', -1, 64) // d[.ddd]e±xx
	digits := b[:1]
	i := 1
	if i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && b[i] != 'e' {
			digits = append(digits, b[i]) // overwrites the '.' in place
			i++
		}
	}
	exp, neg := 0, false
	for i++; i < len(b); i++ { // skip 'e'
		switch c := b[i]; {
		case c == '-':
			neg = true
		case isDigit(c):
			exp = exp*10 + int(c-'0')
		}
	}
	if neg {
		exp = -exp
	}
	return digits, exp + 1
}

// checkNumber reports why the number literal lit cannot go into a record (or any document
// Checker accepts), or "" if it can.
//
// RFC 8785 turns every number into the nearest IEEE 754 double. That is harmless when the decimal
// a publisher wrote survives the trip (1.50 becomes 1.5, 1E3 becomes 1000), but for a number such
// as 12345678901234567890 the ledger would record 12345678901234567000: evidence silently
// altered. So a record may only carry numbers whose canonical form has exactly the value written;
// larger or more precise numbers must be sent as strings.
func checkNumber(lit []byte) string {
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsInf(f, 0) {
		return "number " + Clip(lit) + " is outside the range of an IEEE 754 double"
	}
	ln, ld, le := decimalOf(lit)
	var buf [32]byte
	var cd []byte
	cn := 0
	if f != 0 {
		cd, cn = shortestDigits(buf[:0], math.Abs(f))
	}
	if len(ld) == 0 && len(cd) == 0 { // zero, either sign
		return ""
	}
	if ln == (f < 0) && le == cn && string(ld) == string(cd) {
		return ""
	}
	canon, _ := appendNumber(nil, f)
	return "number " + Clip(lit) + " is not exactly representable and would be logged as " + string(canon) + "; send it as a string"
}

// decimalOf splits a JSON number literal (already checked against the grammar) into sign,
// significant digits without leading or trailing zeros, and the point position n such that the
// value is 0.digits × 10^n. Zero has no digits.
func decimalOf(lit []byte) (neg bool, digits []byte, n int) {
	i := 0
	if i < len(lit) && lit[i] == '-' {
		neg = true
		i++
	}
	intDigits := 0
	for ; i < len(lit) && isDigit(lit[i]); i++ {
		digits = append(digits, lit[i])
		intDigits++
	}
	if i < len(lit) && lit[i] == '.' {
		for i++; i < len(lit) && isDigit(lit[i]); i++ {
			digits = append(digits, lit[i])
		}
	}
	exp := 0
	if i < len(lit) && (lit[i] == 'e' || lit[i] == 'E') {
		i++
		expNeg := false
		if i < len(lit) && (lit[i] == '+' || lit[i] == '-') {
			expNeg = lit[i] == '-'
			i++
		}
		for ; i < len(lit) && isDigit(lit[i]); i++ {
			if exp < 1e9 { // saturate: such numbers are out of range anyway
				exp = exp*10 + int(lit[i]-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	n = intDigits + exp
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
		n--
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	return neg, digits, n
}

// Clip shortens a literal to at most 40 bytes and an ellipsis, for an error message.
func Clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}
