package fpe_test

import (
	"encoding/hex"
	"fmt"
	"log"

	"github.com/tokenvault/tokenvault/crypto/fpe"
)

// NIST SP 800-38G FF1 sample 2: AES-128, radix 10, a 10-byte tweak.
func ExampleNewFF1() {
	key, _ := hex.DecodeString("2b7e151628aed2a6abf7158809cf4f3c")
	tweak, _ := hex.DecodeString("39383736353433323130")

	f, err := fpe.NewFF1(key, 10)
	if err != nil {
		log.Fatal(err)
	}
	ct, err := f.Encrypt(tweak, "0123456789")
	if err != nil {
		log.Fatal(err)
	}
	pt, err := f.Decrypt(tweak, ct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ct)
	fmt.Println(pt)

	// Characters outside the alphabet are refused, never passed through.
	_, err = f.Encrypt(tweak, "-12345678")
	fmt.Println(err)
	// Output:
	// 6124200773
	// 0123456789
	// fpe: input contains a character outside the alphabet
}
