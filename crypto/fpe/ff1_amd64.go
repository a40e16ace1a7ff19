//go:build amd64 && !purego

package fpe

import "golang.org/x/sys/cpu"

// hasAESNI reports whether this CPU runs the AES-NI path (feistelNI): AES-NI for the rounds
// and SSE4.1 for PINSRQ and PEXTRQ.
func hasAESNI() bool { return cpu.X86.HasAES && cpu.X86.HasSSE41 }

// encryptBlockAsm encrypts x in place with the expanded key ks of nr rounds (see expandKey).
//
//go:noescape
func encryptBlockAsm(ks *[maxRoundKeys]byte, nr int, x *[16]byte)

// feistelAsm runs the ten rounds of feistelNI; see ff1_amd64.s.
//
//go:noescape
func feistelAsm(ks *[maxRoundKeys]byte, nr int, hi, lo, iTerm, iStep uint64, mods *[4]uint64, p, q uint64, wide, decrypt bool) (rp, rq uint64)
