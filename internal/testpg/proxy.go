package testpg

import (
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
)

// Proxy forwards TCP connections to a cluster's unix socket, and can freeze
// them: while frozen, no byte goes through in either direction and new
// connections are not forwarded, as with a network that drops packets
// (unlike Stop, after which connections fail at once).
type Proxy struct {
	l    net.Listener
	gate sync.RWMutex // held for writing while frozen
	mu   sync.Mutex
	open map[net.Conn]bool
}

// Proxy starts a proxy to c, closed at the end of t.
func (c *Cluster) Proxy(t testing.TB) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{l: l, open: make(map[net.Conn]bool)}
	target := filepath.Join(c.sock, fmt.Sprintf(".s.PGSQL.%d", c.port))
	go p.serve(target)
	t.Cleanup(p.close)
	return p
}

// URL returns the connection URL of database db through the proxy.
func (p *Proxy) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", p.l.Addr(), db)
}

// Freeze stops all traffic until Thaw.
func (p *Proxy) Freeze() { p.gate.Lock() }

// Thaw lets traffic go through again.
func (p *Proxy) Thaw() { p.gate.Unlock() }

func (p *Proxy) serve(target string) {
	for {
		in, err := p.l.Accept()
		if err != nil {
			return
		}
		go func() {
			p.gate.RLock()
			out, err := net.Dial("unix", target)
			p.gate.RUnlock()
			if err != nil || !p.track(in, out) {
				in.Close()
				if out != nil {
					out.Close()
				}
				return
			}
			go p.pipe(out, in)
			p.pipe(in, out)
		}()
	}
}

func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		return false
	}
	for _, c := range conns {
		p.open[c] = true
	}
	return true
}

// pipe copies from src to dst, a chunk at a time, each chunk only while not
// frozen.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate.RLock()
			_, werr := dst.Write(buf[:n])
			p.gate.RUnlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		c.Close()
	}
	p.open = nil
}
