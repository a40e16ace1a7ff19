// Package testpg starts throwaway PostgreSQL clusters for tests (Start, one per test; or
// Shared, one per package with a fresh database per test): initdb in a
// temporary directory, a server listening only on a unix socket in that
// directory (on a random port number, so that clusters never collide), fsync
// on, trust authentication. Tests can stop and start the server again to
// simulate an outage; the cluster is stopped and removed at cleanup.
//
// When run as root, initdb and pg_ctl are run as the "postgres" user
// (initdb refuses to run as root). The binaries are looked up on PATH and
// then in /usr/lib/postgresql/*/bin (Debian's location). Tests are skipped,
// with a message saying so, only when the binaries are missing.
package testpg
