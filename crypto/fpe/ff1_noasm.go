//go:build !amd64 || purego

package fpe

// hasAESNI reports whether the AES-NI path exists here: it does not (not amd64, or built
// with the purego tag), so every FF1 takes the pure Go path.
func hasAESNI() bool { return false }

// encryptBlockAsm and feistelAsm are never called when hasAESNI is false (FF1.ni stays
// false); they exist so that the package compiles without the assembly.
func encryptBlockAsm(ks *[maxRoundKeys]byte, nr int, x *[16]byte) {
	panic("fpe: AES-NI path called without AES-NI")
}

func feistelAsm(ks *[maxRoundKeys]byte, nr int, hi, lo, iTerm, iStep uint64, mods *[4]uint64, p, q uint64, wide, decrypt bool) (rp, rq uint64) {
	panic("fpe: AES-NI path called without AES-NI")
}
