//go:build amd64 && !purego

#include "textflag.h"

// func encryptBlockAsm(ks *[maxRoundKeys]byte, nr int, x *[16]byte)
// Encrypts the block x in place with the expanded key ks of nr rounds.
TEXT ·encryptBlockAsm(SB), NOSPLIT, $0-24
	MOVQ  ks+0(FP), AX
	MOVQ  nr+8(FP), CX
	MOVQ  x+16(FP), DX
	MOVOU (DX), X0
	MOVOU (AX), X1
	PXOR  X1, X0
	ADDQ  $16, AX
	DECQ  CX

encLoop:
	MOVOU  (AX), X1
	AESENC X1, X0
	ADDQ   $16, AX
	DECQ   CX
	JNZ    encLoop
	MOVOU      (AX), X1
	AESENCLAST X1, X0
	MOVOU      X0, (DX)
	RET

// func feistelAsm(ks *[maxRoundKeys]byte, nr int, hi, lo, iTerm, iStep uint64, mods *[4]uint64, p, q uint64, wide, decrypt bool) (rp, rq uint64)
//
// The ten Feistel rounds of FF1 on integers (see feistelNI). Round r encrypts the block whose
// first 8 bytes are hi and last 8 bytes are lo xor iTerm_r xor the big-endian bytes of q (hi,
// lo and iTerm as loaded from memory, little-endian; round key 0 already xored in; iTerm_r =
// iTerm + r*iStep holds the round number [i]^1); takes y from the first 8 bytes (12 if wide)
// of the result, modulo m (mods[0] on even rounds, mods[2] on odd; mods[1] and mods[3] are
// floor((2^64-1)/m), for the Barrett reduction when not wide); and sets
// (p, q) = (q, (p + y) mod m), or (q, (p - y) mod m) when decrypt.
//
// Registers: X1-X14 round keys 1..14, X15 the block's constant half, X0 the block; R8 p, R9 q;
// R10, R11 this round's modulus and inverse, R12, R13 the next round's; SI iTerm_r; CX the
// rounds left; R14, R15 the round's bounds for the final selection. Branches depend only on
// nr, wide and decrypt, never on data.
TEXT ·feistelAsm(SB), NOSPLIT, $0-96
	MOVQ  ks+0(FP), AX
	MOVOU 16(AX), X1
	MOVOU 32(AX), X2
	MOVOU 48(AX), X3
	MOVOU 64(AX), X4
	MOVOU 80(AX), X5
	MOVOU 96(AX), X6
	MOVOU 112(AX), X7
	MOVOU 128(AX), X8
	MOVOU 144(AX), X9
	MOVOU 160(AX), X10
	MOVOU 176(AX), X11
	MOVOU 192(AX), X12
	MOVOU 208(AX), X13
	MOVOU 224(AX), X14
	MOVQ  hi+16(FP), AX
	MOVQ  AX, X15
	MOVQ  iTerm+32(FP), SI
	MOVQ  mods+48(FP), AX
	MOVQ  0(AX), R10
	MOVQ  8(AX), R11
	MOVQ  16(AX), R12
	MOVQ  24(AX), R13
	MOVQ  p+56(FP), R8
	MOVQ  q+64(FP), R9
	MOVQ  $10, CX

round:
	// The block: hi || lo xor iTerm_r xor [q]^8.
	MOVQ   lo+24(FP), AX
	XORQ   SI, AX
	MOVOU  X15, X0
	MOVQ   R9, DI
	BSWAPQ DI
	XORQ   AX, DI
	PINSRQ $1, DI, X0
	AESENC X1, X0
	AESENC X2, X0
	AESENC X3, X0
	AESENC X4, X0
	AESENC X5, X0
	AESENC X6, X0
	AESENC X7, X0
	AESENC X8, X0
	AESENC X9, X0

	// While the AES runs: R14 = m - p and R15 = 2m - p (encrypt) or p + m and
	// p + 2m (decrypt), for the final selection.
	CMPB decrypt+73(FP), $0
	JNE  decBounds
	MOVQ R10, R14
	SUBQ R8, R14
	JMP  haveBounds

decBounds:
	LEAQ (R8)(R10*1), R14

haveBounds:
	LEAQ (R14)(R10*1), R15
	MOVQ nr+8(FP), BX
	CMPQ BX, $10
	JEQ  last10
	AESENC X10, X0
	AESENC X11, X0
	CMPQ   BX, $12
	JEQ    last12
	AESENC     X12, X0
	AESENC     X13, X0
	AESENCLAST X14, X0
	JMP        output

last12:
	AESENCLAST X12, X0
	JMP        output

last10:
	AESENCLAST X10, X0

output:
	MOVQ X0, BX
	CMPB wide+72(FP), $0
	JNE  wideY

	// y = the first 8 bytes, big-endian; BX = r = y - q*m, where q = the high word of
	// y*inv is floor(y/m) or one less (Barrett), so r is in [0, 2m), and m <= 2^32 here.
	BSWAPQ BX
	MOVQ   BX, AX
	MULQ   R11
	IMULQ  R10, DX
	SUBQ   DX, BX
	CMPB   decrypt+73(FP), $0
	JNE    narrowDec

	// Encrypt: s = p + r is in [0, 3m); c = s, s - m or s - 2m: r - (m - p) and
	// r - (2m - p) do not borrow when s >= m, s >= 2m.
	MOVQ    BX, AX
	ADDQ    R8, AX
	MOVQ    BX, DX
	SUBQ    R14, DX
	CMOVQCC DX, AX
	SUBQ    R15, BX
	CMOVQCC BX, AX
	JMP     next

narrowDec:
	// Decrypt: s = p + 2m - r is in (0, 3m); c = s, s - m = (p + m) - r or
	// s - 2m = p - r, each taken when it does not borrow.
	MOVQ    R15, AX
	SUBQ    BX, AX
	MOVQ    R14, DX
	SUBQ    BX, DX
	CMOVQCC DX, AX
	MOVQ    R8, DI
	SUBQ    BX, DI
	CMOVQCC DI, AX
	JMP     next

wideY:
	// y = the first 12 bytes, big-endian: yHi (32 bits) in AX, yLo in BX; then
	// BX = (yHi*2^64 + yLo) mod m with two divisions (the first makes the second's
	// high word smaller than m).
	PEXTRQ $1, X0, DX
	MOVL   BX, AX
	BSWAPL AX
	SHRQ   $32, BX
	SHLQ   $32, DX
	ORQ    DX, BX
	BSWAPQ BX
	XORL   DX, DX
	DIVQ   R10
	MOVQ   BX, AX
	DIVQ   R10
	MOVQ   DX, BX

	// t = m - y (encrypt) or y (decrypt); c = p - t, plus m if that borrowed.
	MOVQ    R10, AX
	SUBQ    BX, AX
	CMPB    decrypt+73(FP), $0
	CMOVQNE BX, AX
	MOVQ    R8, DX
	SUBQ    AX, DX
	LEAQ    (DX)(R10*1), BX
	CMPQ    R8, AX
	CMOVQCS BX, DX
	MOVQ    DX, AX

next:
	// (p, q) = (q, c); the next round uses the other modulus and round number.
	MOVQ  R9, R8
	MOVQ  AX, R9
	XCHGQ R10, R12
	XCHGQ R11, R13
	ADDQ  iStep+40(FP), SI
	DECQ  CX
	JNZ   round

	MOVQ R8, rp+80(FP)
	MOVQ R9, rq+88(FP)
	RET
