package testpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is a running (or stopped) PostgreSQL cluster owned by one test.
type Cluster struct {
	dir, data, sock, log string
	port                 int
	bin                  string   // directory of initdb and pg_ctl
	runAs                []string // prefix running a command as the postgres user, or nil
}

// Start creates and starts a cluster, registering its removal with t.Cleanup.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c, err := start()
	if errors.Is(err, errNoBinaries) {
		skipMissing(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.remove)
	return c
}

// RequireToolsEnv names the environment variable that turns a test skipped for a missing
// tool (PostgreSQL here, Chromium for the console's browser tests) into a failure. .ci/run
// sets it, so that CI can never pass by skipping what it was meant to run.
const RequireToolsEnv = "TOKENVAULT_REQUIRE_TOOLS"

// skipMissing skips t for the missing tool err names, or fails it under RequireToolsEnv=1.
func skipMissing(t testing.TB, err error) {
	t.Helper()
	if os.Getenv(RequireToolsEnv) == "1" {
		t.Fatalf("%v (%s=1: missing tools fail instead of skipping)", err, RequireToolsEnv)
	}
	t.Skip(err.Error())
}

// errNoBinaries is start's error when PostgreSQL is not installed.
var errNoBinaries = errors.New("testpg: PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin: install the postgresql package to run this test")

// start creates and starts a cluster; the caller removes it with remove.
func start() (*Cluster, error) {
	bin := findBin()
	if bin == "" {
		return nil, errNoBinaries
	}
	dir, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), sock: dir, log: filepath.Join(dir, "server.log"), bin: bin}
	if err := c.init(); err != nil {
		c.remove()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("testpg: running as root and there is no postgres user to run initdb as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return err
		}
		c.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := c.command("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput(); err != nil {
		return fmt.Errorf("testpg: initdb: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	conf := fmt.Sprintf("\nlisten_addresses = ''\nunix_socket_directories = '%s'\nport = %d\nfsync = on\nmax_connections = 300\nshared_buffers = 32MB\n", c.sock, c.port)
	if err := appendFile(filepath.Join(c.data, "postgresql.conf"), conf); err != nil {
		return err
	}
	return c.start()
}

// remove stops the server (immediate) and deletes the cluster's directory.
func (c *Cluster) remove() {
	_ = c.pgCtl("stop", "-m", "immediate")
	os.RemoveAll(c.dir)
}

// URL returns the connection URL of database db (user postgres, unix socket).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, c.sock, c.port)
}

// CreateDB creates database name and returns its URL.
func (c *Cluster) CreateDB(t testing.TB, name string) string {
	t.Helper()
	c.Exec(t, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return c.URL(name)
}

// Exec runs sql in database db, failing t on error.
func (c *Cluster) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(db))
	if err != nil {
		t.Fatalf("testpg: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("testpg: %s: %v", sql, err)
	}
}

// Stop stops the server at once (pg_ctl stop -m immediate: like a crash; the
// next start recovers from the WAL).
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.pgCtl("stop", "-m", "immediate"); err != nil {
		t.Fatalf("testpg: stop: %v", err)
	}
}

// Start starts the server again after Stop, and waits until it accepts
// connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
}

func (c *Cluster) start() error {
	if err := c.pgCtl("start", "-w", "-t", "60", "-l", c.log); err != nil {
		log, _ := os.ReadFile(c.log)
		return fmt.Errorf("testpg: start: %v\n%s", err, log)
	}
	return nil
}

func (c *Cluster) pgCtl(args ...string) error {
	out, err := c.command("pg_ctl", append([]string{"-D", c.data}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(c.runAs), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.dir
	return cmd
}

// findBin returns the directory holding initdb and pg_ctl, or "".
func findBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Dir(real)
			}
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Sort(dirs)
	for _, d := range slices.Backward(dirs) {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	return ""
}

// freePort returns a TCP port number that was free a moment ago. The server
// listens only on a unix socket, whose name holds the port number, so the
// number only has to be unlikely to be used by another test's cluster.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
