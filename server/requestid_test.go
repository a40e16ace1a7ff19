package server

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc/peer"
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

// TestSourceOfTCPPeers checks sourceOf's shortcut for TCP peers against the general path,
// the host of SplitHostPort(addr.String()).
func TestSourceOfTCPPeers(t *testing.T) {
	for _, a := range []*net.TCPAddr{
		{IP: net.ParseIP("127.0.0.1"), Port: 1234},
		{IP: net.ParseIP("::1"), Port: 1},
		{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 443},
		{IP: net.ParseIP("2001:db8::1"), Port: 8080},
		{IP: net.IPv4(192, 168, 1, 2).To4(), Port: 0},
		{IP: net.ParseIP("fe80::1"), Port: 9, Zone: "eth0"},
		{Port: 80},
	} {
		want, _, err := net.SplitHostPort(a.String())
		if err != nil {
			want = a.String()
		}
		ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: a})
		if got := sourceOf(ctx); got != want {
			t.Errorf("sourceOf(%v) = %q, want %q", a, got, want)
		}
	}
}
