package tokenizer

import "strings"

// GPT-2's byte-level alphabet maps each byte to a printable character so that
// byte strings can live in a text vocabulary: the printable bytes '!'..'~',
// '¡'..'¬' and '®'..'ÿ' map to themselves, and the other 68 bytes map, in
// byte order, to U+0100 onwards. The mapping is arithmetic, so no tables.

// byteToRune returns the byte-level character for b.
func byteToRune(b byte) rune {
	switch {
	case b >= '!' && b <= '~', b >= 0xA1 && b <= 0xAC, b >= 0xAE:
		return rune(b)
	case b <= ' ':
		return 0x100 + rune(b) // 0x00..0x20 → U+0100..U+0120
	case b <= 0xA0:
		return 0x100 + 33 + rune(b-0x7F) // 0x7F..0xA0 → U+0121..U+0142
	default: // 0xAD
		return 0x143
	}
}

// runeToByte inverts byteToRune.
func runeToByte(r rune) (byte, bool) {
	switch {
	case r >= '!' && r <= '~', r >= 0xA1 && r <= 0xAC, r >= 0xAE && r <= 0xFF:
		return byte(r), true
	case r >= 0x100 && r <= 0x120:
		return byte(r - 0x100), true
	case r >= 0x121 && r <= 0x142:
		return byte(r-0x121) + 0x7F, true
	case r == 0x143:
		return 0xAD, true
	}
	return 0, false
}

// byteLevelEncode maps every byte of s to its byte-level character.
func byteLevelEncode(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune(s[i]))
	}
	return b.String()
}

// appendByteLevelToken appends the bytes token stands for. As in Hugging
// Face's ByteLevel decoder, a token with any character outside the alphabet
// (an added token such as "<｜begin▁of▁sentence｜>") contributes its own
// UTF-8 text unchanged.
func appendByteLevelToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := runeToByte(r)
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}
