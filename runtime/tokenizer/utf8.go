package tokenizer

import "unicode/utf8"

// appendLossy appends b to dst, replacing each maximal invalid UTF-8
// subsequence with U+FFFD. This is the substitution rule of Rust's
// String::from_utf8_lossy (and of the WHATWG decoder), which the Hugging Face
// ByteLevel decoder uses; Go's own conversions emit one U+FFFD per bad byte
// instead, so they cannot be used where output must match the reference.
func appendLossy(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			dst = append(dst, b[i:i+size]...)
			i += size
			continue
		}
		dst = append(dst, "\uFFFD"...)
		i += invalidPrefixLen(b[i:])
	}
	return dst
}

// lossyString is appendLossy for a string result.
func lossyString(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return string(appendLossy(make([]byte, 0, len(b)+8), b))
}

// sanitizeUTF8 returns s with invalid sequences replaced as appendLossy does.
func sanitizeUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendLossy(nil, []byte(s)))
}

// invalidPrefixLen returns how many bytes at the start of b form the longest
// prefix of some well-formed UTF-8 sequence (at least 1). It is only called
// where b does not start with a complete valid sequence.
func invalidPrefixLen(b []byte) int {
	lo, hi, need := leadInfo(b[0])
	if need == 0 {
		return 1
	}
	n := 1
	for ; n <= need && n < len(b); n++ {
		c := b[n]
		if n == 1 {
			if c < lo || c > hi {
				break
			}
		} else if c < 0x80 || c > 0xBF {
			break
		}
	}
	return n
}

// leadInfo reports, for a UTF-8 lead byte, the allowed range of the second
// byte and how many continuation bytes follow. need is 0 for bytes that can
// never start a sequence.
func leadInfo(c byte) (lo, hi byte, need int) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 0x80, 0xBF, 1
	case c == 0xE0:
		return 0xA0, 0xBF, 2
	case c == 0xED:
		return 0x80, 0x9F, 2
	case c >= 0xE1 && c <= 0xEF:
		return 0x80, 0xBF, 2
	case c == 0xF0:
		return 0x90, 0xBF, 3
	case c >= 0xF1 && c <= 0xF3:
		return 0x80, 0xBF, 3
	case c == 0xF4:
		return 0x80, 0x8F, 3
	}
	return 0, 0, 0
}

// completeLen returns the length of the longest prefix of b that does not end
// in an incomplete-but-still-completable UTF-8 sequence. Bytes after it may
// become a valid character once more bytes arrive, so a stream holds them back.
func completeLen(b []byte) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(b); k++ {
		i := len(b) - k
		c := b[i]
		if c >= 0x80 && c <= 0xBF {
			continue // continuation byte: keep looking for the lead
		}
		if !utf8.FullRune(b[i:]) {
			return i
		}
		return len(b)
	}
	return len(b)
}
