package server

import (
	"regexp"
	"strings"
	"testing"
)

// TestValidRequestIDMatchesRegexp checks the hand-written request id check against the rule it
// replaced, ^[A-Za-z0-9._-]{1,64}$, on every byte and on lengths around the limit.
func TestValidRequestIDMatchesRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	cases := []string{"", "a", "A-b_c.9", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a\n", "é", "a/b", "a:b"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{byte(c)}), "ok"+string([]byte{byte(c)})+"ok")
	}
	for _, id := range cases {
		if got, want := validRequestID(id), re.MatchString(id); got != want {
			t.Errorf("validRequestID(%q) = %v, want %v", id, got, want)
		}
	}
}
