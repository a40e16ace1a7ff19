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

// func feistelAsm(ks *[maxRoundKeys]byte, nr int, hi uint64, los *[numRounds]uint64, mods *[4]uint64, p, q uint64, wide, decrypt bool) (rp, rq uint64)
//
// The ten Feistel rounds of FF1 on integers (see feistelNI). Round r encrypts the block whose
// first 8 bytes are hi and last 8 bytes are los[r] xor the big-endian bytes of q (hi and los
// as loaded from memory, little-endian, round key 0 already xored in); takes y from the first
// 8 bytes (12 if wide) of the result, modulo m (mods[0] on even rounds, mods[2] on odd;
// mods[1] and mods[3] are floor((2^64-1)/m), for the Barrett reduction when not wide); and
// sets (p, q) = (q, (p + y) mod m), or (q, (p - y) mod m) when decrypt.
//
// Registers: X1-X14 round keys 1..14, X15 the block's constant half, X0 the block; R8 p, R9 q;
// R10, R11 this round's modulus and inverse, R12, R13 the next round's; SI los[r]; CX the
// rounds left. Branches depend only on nr, wide and decrypt, never on data.
TEXT ·feistelAsm(SB), NOSPLIT, $0-80
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
	MOVQ  los+24(FP), SI
	MOVQ  mods+32(FP), AX
	MOVQ  0(AX), R10
	MOVQ  8(AX), R11
	MOVQ  16(AX), R12
	MOVQ  24(AX), R13
	MOVQ  p+40(FP), R8
	MOVQ  q+48(FP), R9
	MOVQ  $10, CX

round:
	// The block: hi || los[r] xor [q]^8.
	MOVOU  X15, X0
	MOVQ   R9, DI
	BSWAPQ DI
	XORQ   (SI), DI
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
	MOVQ   nr+8(FP), BX
	CMPQ   BX, $10
	JEQ    last10
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
	CMPB wide+56(FP), $0
	JNE  wideY

	// y = the first 8 bytes, big-endian; BX = r = y - q*m, where q = the high word of
	// y*inv is floor(y/m) or one less (Barrett), so r is in [0, 2m), and m <= 2^32 here.
	BSWAPQ BX
	MOVQ   BX, AX
	MULQ   R11
	IMULQ  R10, DX
	SUBQ   DX, BX
	CMPB   decrypt+57(FP), $0
	JNE    narrowDec

	// s = p + r (encrypt) or p + 2m - r (decrypt), in [0, 3m): c = s mod m.
	ADDQ BX, R8
	MOVQ R8, BX
	JMP  reduce3

narrowDec:
	LEAQ (R8)(R10*2), DI
	SUBQ BX, DI
	MOVQ DI, BX

reduce3:
	MOVQ    BX, DX
	MOVQ    BX, AX
	SUBQ    R10, AX
	CMOVQCC AX, DX
	LEAQ    (R10)(R10*1), DI
	SUBQ    DI, BX
	CMOVQCC BX, DX
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
	CMPB    decrypt+57(FP), $0
	CMOVQNE BX, AX
	MOVQ    R8, DX
	SUBQ    AX, DX
	LEAQ    (DX)(R10*1), BX
	CMPQ    R8, AX
	CMOVQCS BX, DX

next:
	// (p, q) = (q, c); the next round uses the other modulus.
	MOVQ  R9, R8
	MOVQ  DX, R9
	XCHGQ R10, R12
	XCHGQ R11, R13
	ADDQ  $8, SI
	DECQ  CX
	JNZ   round

	MOVQ R8, rp+64(FP)
	MOVQ R9, rq+72(FP)
	RET
