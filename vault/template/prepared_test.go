package template

import (
	"errors"
	"fmt"
	"testing"
)

// TestPreparedMatchesTemplate checks that the Prepared path gives exactly what the Template
// methods give, for the values of every golden template (built-ins and custom definitions,
// valid and invalid values): Prepare's error is Check's, FreeSpace is FreeSpaceOf, and the
// candidates of several attempts, drawn one after another from the same Prepared (reusing
// its plan), equal Candidate's under the same keys and randomness.
func TestPreparedMatchesTemplate(t *testing.T) {
	attempts := append([]int{-1}, goldenAttempts...)
	attempts = append(attempts, 0, 3) // again, after later attempts used the plan
	for name, tm := range goldenTemplates(t) {
		k := newKeys("prepared", name)
		n := 0
		for _, value := range goldenValues(tm, 60) {
			checkErr := tm.Check(value)
			pv, err := Prepare(tm, value)
			if !sameError(err, checkErr) {
				t.Fatalf("%s: Prepare(%q) error = %v, Check = %v", name, value, err, checkErr)
			}
			if err != nil {
				continue
			}
			n++
			fs, err := pv.FreeSpace()
			wantFS, wantErr := tm.FreeSpaceOf(value)
			if fs != wantFS || !sameError(err, wantErr) {
				t.Fatalf("%s: FreeSpace(%q) = %v, %v; FreeSpaceOf = %v, %v", name, value, fs, err, wantFS, wantErr)
			}
			for i, a := range attempts {
				got, gotErr := pv.Candidate(k, a, goldenRand(name, value, i))
				want, wantErr := tm.Candidate(k, value, a, goldenRand(name, value, i))
				if got != want || !sameError(gotErr, wantErr) {
					t.Fatalf("%s: Prepared.Candidate(%q, %d) = %q, %v; Candidate = %q, %v", name, value, a, got, gotErr, want, wantErr)
				}
			}
			pv.Release()
			pv.Release() // a no-op
		}
		if n < 30 {
			t.Errorf("%s: only %d valid values", name, n)
		}
	}
}

// sameError reports whether a and b are both nil, or have the same text and the same
// sentinel.
func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error() && errors.Is(a, ErrInvalidValue) == errors.Is(b, ErrInvalidValue)
}

// foreignTemplate is a Template this package did not build (it wraps one that it did).
type foreignTemplate struct{ Template }

// TestPreparedForeignTemplate checks that Prepare also serves a Template implemented
// elsewhere, through its methods.
func TestPreparedForeignTemplate(t *testing.T) {
	tm := foreignTemplate{mustBuiltin("pan")}
	k := newKeys("prepared", "pan")
	if _, err := Prepare(tm, "4111"); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("Prepare(short pan) = %v, want ErrInvalidValue", err)
	}
	pv, err := Prepare(tm, "4111 1111 1111 1111")
	if err != nil {
		t.Fatal(err)
	}
	defer pv.Release()
	want, _ := tm.Candidate(k, "4111 1111 1111 1111", 2, nil)
	if got, err := pv.Candidate(k, 2, nil); got != want || err != nil {
		t.Fatalf("Candidate = %q, %v, want %q", got, err, want)
	}
	fs, err := pv.FreeSpace()
	if wantFS, _ := tm.FreeSpaceOf("4111 1111 1111 1111"); fs != wantFS || err != nil {
		t.Fatalf("FreeSpace = %v, %v, want %v", fs, err, wantFS)
	}
}

// TestPreparedReleaseClears checks that Release leaves nothing of the value in the pooled
// plan.
func TestPreparedReleaseClears(t *testing.T) {
	const value = "4111 2222 3333 4444"
	pv, err := Prepare(mustBuiltin("pan"), value)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pv.Candidate(newKeys("prepared", "pan"), 0, nil); err != nil {
		t.Fatal(err)
	}
	p := pv.p
	pv.Release()
	if s := dirty(p); s != "" {
		t.Fatalf("released plan still holds %s", s)
	}
	if pv.p != nil {
		t.Fatal("Release left the plan in the Prepared")
	}
}

func ExamplePrepare() {
	pan, _ := Builtin("pan")
	pv, err := Prepare(pan, "4111 1111 1111 1111")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer pv.Release()
	fs, _ := pv.FreeSpace()
	fmt.Printf("%.2f\n", fs)
	// Output: 11.95
}
