package fpe

import "encoding/binary"

// maxRoundKeys is the size of an expanded AES-256 key: 15 round keys of 16 bytes.
const maxRoundKeys = 15 * 16

// expandKey returns the AES encryption key schedule of key (16, 24 or 32 bytes), by the
// KeyExpansion routine of FIPS-197 (section 5.2), as the round keys' bytes in order, and the
// number of rounds Nr (10, 12 or 14). It is what the AES-NI path's AESENC instructions take.
//
// The S-box is computed, not looked up (subByte), so expanding a key reads no memory at
// key-dependent addresses.
func expandKey(key []byte) (ks [maxRoundKeys]byte, nr int) {
	nk := len(key) / 4
	nr = nk + 6
	var w [60]uint32
	for i := range nk {
		w[i] = binary.BigEndian.Uint32(key[4*i:])
	}
	rcon := uint32(1)
	for i := nk; i < 4*(nr+1); i++ {
		t := w[i-1]
		switch {
		case i%nk == 0:
			t = subWord(t<<8|t>>24) ^ rcon<<24 // SubWord(RotWord(temp)) xor Rcon[i/Nk]
			rcon = uint32(xtime(byte(rcon)))
		case nk > 6 && i%nk == 4:
			t = subWord(t)
		}
		w[i] = w[i-nk] ^ t
	}
	for i := range 4 * (nr + 1) {
		binary.BigEndian.PutUint32(ks[4*i:], w[i])
	}
	return ks, nr
}

// subWord applies the S-box to each byte of w.
func subWord(w uint32) uint32 {
	return uint32(subByte(byte(w>>24)))<<24 | uint32(subByte(byte(w>>16)))<<16 |
		uint32(subByte(byte(w>>8)))<<8 | uint32(subByte(byte(w)))
}

// subByte is the AES S-box (FIPS-197 section 5.1.1): the multiplicative inverse in GF(2^8),
// computed as x^254 (0 maps to 0), followed by the affine transformation. Constant time.
func subByte(x byte) byte {
	// x^254 = x^2 * x^4 * ... * x^128.
	b, sq := byte(1), x
	for range 7 {
		sq = gmul(sq, sq)
		b = gmul(b, sq)
	}
	return b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63
}

func rotl8(b byte, k uint) byte { return b<<k | b>>(8-k) }

// xtime multiplies b by x in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, without branches.
func xtime(b byte) byte { return b<<1 ^ -(b>>7)&0x1b }

// gmul multiplies a and b in GF(2^8), without branches or table lookups.
func gmul(a, b byte) byte {
	var p byte
	for range 8 {
		p ^= -(b & 1) & a
		a = xtime(a)
		b >>= 1
	}
	return p
}
