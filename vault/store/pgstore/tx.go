package pgstore

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Scans read pages of rows, from scanFirstPage rows growing to scanMaxPage:
// the callback may run queries of its own on the same connection, so a
// result set cannot stay open while it runs.
const (
	scanFirstPage = 64
	scanMaxPage   = 4096
	scanCtxEvery  = 256 // keys visited between context checks (queries check it too)
)

// pgTx is the store.Tx of one run of a View or Update function. Writes are
// buffered in pending and sent in one round trip (one multi-row statement
// per bucket) before a Scan and before COMMIT; Get reads pending first.
type pgTx struct {
	ctx      context.Context
	tx       *lazyTx
	writable bool
	done     bool
	err      error // the first database error: the transaction is lost
	scanning []store.Bucket
	pending  map[string]*write // by pendingKey
}

type write struct {
	bucket store.Bucket
	key    []byte
	value  []byte // nil: delete
	create bool   // Insert: a plain INSERT, failing if the key exists
}

var _ store.Tx = (*pgTx)(nil)

// pendingKey is unique per bucket and key: bucket names hold no NUL.
func pendingKey(b store.Bucket, key []byte) string {
	return string(b) + "\x00" + string(key)
}

func (t *pgTx) finish() { t.done = true }

// fail records the first database error of the transaction and returns it.
func (t *pgTx) fail(err error) error {
	if t.err == nil {
		t.err = fmt.Errorf("store: postgres: %w", sanitize(err))
	}
	return t.err
}

func (t *pgTx) Get(b store.Bucket, key []byte) []byte {
	return t.get(b, key, `SELECT value FROM tokenvault_kv WHERE bucket = $1 AND key = $2`)
}

// GetForShare implements store.SharedGetter: SELECT … FOR SHARE. Under REPEATABLE READ,
// PostgreSQL fails it with a serialization failure (which Update re-runs) when the row was
// changed after the snapshot, and a writer of the row waits until this transaction ends.
func (t *pgTx) GetForShare(b store.Bucket, key []byte) []byte {
	if !t.writable { // a read-only View cannot lock rows
		return t.Get(b, key)
	}
	return t.get(b, key, `SELECT value FROM tokenvault_kv WHERE bucket = $1 AND key = $2 FOR SHARE`)
}

func (t *pgTx) get(b store.Bucket, key []byte, query string) []byte {
	if t.done || t.err != nil || store.ValidateKey(key) != nil || b.Validate() != nil {
		return nil
	}
	if w, ok := t.pending[pendingKey(b, key)]; ok {
		return w.value
	}
	var v []byte
	err := t.tx.QueryRow(t.ctx, query, string(b), key).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil
	case err != nil:
		t.fail(err)
		return nil
	case v == nil:
		return []byte{}
	}
	return v
}

// GetMany reads every key not found among the pending writes in one
// statement (SELECT … WHERE key = ANY($2)), then overlays the pending writes.
func (t *pgTx) GetMany(b store.Bucket, keys [][]byte) [][]byte {
	return t.getMany(b, keys, `SELECT key, value FROM tokenvault_kv WHERE bucket = $1 AND key = ANY($2::bytea[])`)
}

// GetManyForShare implements store.SharedGetter: GetMany with FOR SHARE (see GetForShare).
// Keys among the transaction's own writes are not locked: it holds their rows already, or
// will create them.
func (t *pgTx) GetManyForShare(b store.Bucket, keys [][]byte) [][]byte {
	if !t.writable {
		return t.GetMany(b, keys)
	}
	return t.getMany(b, keys, `SELECT key, value FROM tokenvault_kv WHERE bucket = $1 AND key = ANY($2::bytea[]) FOR SHARE`)
}

// guardedQuery reads the guards ($2) of keys ($3) from the snapshot and locks for share the
// rows of bucket $1 that have none, in one statement: FOR SHARE locks only the rows that pass
// the NOT EXISTS.
const guardedQuery = `WITH g AS (SELECT key, value FROM tokenvault_kv WHERE bucket = $2 AND key = ANY($3::bytea[])),
v AS (SELECT kv.key, kv.value FROM tokenvault_kv kv WHERE kv.bucket = $1 AND kv.key = ANY($3::bytea[])
	AND NOT EXISTS (SELECT 1 FROM g WHERE g.key = kv.key) FOR SHARE OF kv)
SELECT true, key, value FROM g UNION ALL SELECT false, key, value FROM v`

// GetManyForShareUnless implements store.GuardedSharedGetter in one statement (guardedQuery).
// It leaves to the caller (ok false) a read-only transaction and keys this transaction wrote
// in either bucket.
func (t *pgTx) GetManyForShareUnless(b, guard store.Bucket, keys [][]byte) (vals, guards [][]byte, ok bool) {
	if !t.writable {
		return nil, nil, false
	}
	if len(keys) == 0 {
		return nil, nil, true
	}
	vals, guards = make([][]byte, len(keys)), make([][]byte, len(keys))
	if t.done || t.err != nil || b.Validate() != nil || guard.Validate() != nil {
		return vals, guards, true
	}
	var ask [][]byte
	at := make(map[string][]int, len(keys)) // key → indexes in keys
	for i, k := range keys {
		if store.ValidateKey(k) != nil {
			continue
		}
		if _, ok := t.pending[pendingKey(b, k)]; ok {
			return nil, nil, false
		}
		if _, ok := t.pending[pendingKey(guard, k)]; ok {
			return nil, nil, false
		}
		if _, seen := at[string(k)]; !seen {
			ask = append(ask, k)
		}
		at[string(k)] = append(at[string(k)], i)
	}
	if len(ask) == 0 {
		return vals, guards, true
	}
	rows, err := t.tx.Query(t.ctx, guardedQuery, string(b), string(guard), ask)
	if err != nil {
		t.fail(err)
		return make([][]byte, len(keys)), make([][]byte, len(keys)), true
	}
	var isGuard bool
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&isGuard, &k, &v}, func() error {
		if v == nil {
			v = []byte{}
		}
		into := vals
		if isGuard {
			into = guards
		}
		for _, i := range at[string(k)] {
			into[i] = v
		}
		return nil
	})
	if err != nil {
		t.fail(err)
		return make([][]byte, len(keys)), make([][]byte, len(keys)), true
	}
	return vals, guards, true
}

// GetManyIn implements store.MultiGetter in one statement: one SELECT per read, each
// planned as GetMany's, joined by UNION ALL, each row tagged with its read's index. It leaves
// to the caller (ok false) keys this transaction wrote.
func (t *pgTx) GetManyIn(reads []store.Read) ([][][]byte, bool) {
	vals := make([][][]byte, len(reads))
	for i, r := range reads {
		if len(r.Keys) > 0 {
			vals[i] = make([][]byte, len(r.Keys))
		}
	}
	if t.done || t.err != nil {
		return vals, true
	}
	var sql strings.Builder
	var args []any
	at := make([]map[string][]int, len(reads)) // per read: key → indexes in its keys
	for i, r := range reads {
		if len(r.Keys) == 0 || r.Bucket.Validate() != nil {
			continue
		}
		var ask [][]byte
		at[i] = make(map[string][]int, len(r.Keys))
		for n, k := range r.Keys {
			if store.ValidateKey(k) != nil {
				continue
			}
			if _, ok := t.pending[pendingKey(r.Bucket, k)]; ok {
				return nil, false
			}
			if _, seen := at[i][string(k)]; !seen {
				ask = append(ask, k)
			}
			at[i][string(k)] = append(at[i][string(k)], n)
		}
		if len(ask) == 0 {
			continue
		}
		if sql.Len() > 0 {
			sql.WriteString("\nUNION ALL ")
		}
		fmt.Fprintf(&sql, "SELECT %d, key, value FROM tokenvault_kv WHERE bucket = $%d AND key = ANY($%d::bytea[])", i, len(args)+1, len(args)+2)
		args = append(args, string(r.Bucket), ask)
	}
	if len(args) == 0 {
		return vals, true
	}
	fail := func(err error) ([][][]byte, bool) {
		t.fail(err)
		out := make([][][]byte, len(reads))
		for i, r := range reads {
			if len(r.Keys) > 0 {
				out[i] = make([][]byte, len(r.Keys))
			}
		}
		return out, true
	}
	rows, err := t.tx.Query(t.ctx, sql.String(), args...)
	if err != nil {
		return fail(err)
	}
	var i int32
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&i, &k, &v}, func() error {
		if i < 0 || int(i) >= len(reads) || at[i] == nil {
			return fmt.Errorf("a row of read %d, which was not asked", i)
		}
		if v == nil {
			v = []byte{}
		}
		for _, n := range at[i][string(k)] {
			vals[i][n] = v
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return vals, true
}

func (t *pgTx) getMany(b store.Bucket, keys [][]byte, query string) [][]byte {
	if len(keys) == 0 {
		return nil
	}
	out := make([][]byte, len(keys))
	if t.done || t.err != nil || b.Validate() != nil {
		return out
	}
	var ask [][]byte
	at := make(map[string][]int, len(keys)) // key → indexes in keys still to read
	for i, k := range keys {
		if store.ValidateKey(k) != nil {
			continue
		}
		if w, ok := t.pending[pendingKey(b, k)]; ok {
			out[i] = w.value
			continue
		}
		if _, seen := at[string(k)]; !seen {
			ask = append(ask, k)
		}
		at[string(k)] = append(at[string(k)], i)
	}
	if len(ask) == 0 {
		return out
	}
	rows, err := t.tx.Query(t.ctx, query, string(b), ask)
	if err != nil {
		t.fail(err)
		return make([][]byte, len(keys))
	}
	var k, v []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		if v == nil {
			v = []byte{}
		}
		for _, i := range at[string(k)] {
			out[i] = v
		}
		return nil
	})
	if err != nil {
		t.fail(err)
		return make([][]byte, len(keys))
	}
	return out
}

// checkWrite checks what Put, Delete and NextSequence have in common.
func (t *pgTx) checkWrite(b store.Bucket) error {
	switch {
	case t.done:
		return store.ErrTxDone
	case !t.writable:
		return store.ErrReadOnly
	}
	if err := b.Validate(); err != nil {
		return err
	}
	return t.err
}

// checkKey checks the arguments and state of Put and Delete.
func (t *pgTx) checkKey(b store.Bucket, key []byte) error {
	if err := t.checkWrite(b); err != nil {
		return err
	}
	if err := store.ValidateKey(key); err != nil {
		return err
	}
	if slices.Contains(t.scanning, b) {
		return store.ErrScanMutation
	}
	return nil
}

// stage records the write of value (nil: a delete) to key in bucket b.
func (t *pgTx) stage(b store.Bucket, key, value []byte) {
	if t.pending == nil {
		t.pending = make(map[string]*write)
	}
	t.pending[pendingKey(b, key)] = &write{bucket: b, key: key, value: value}
}

func (t *pgTx) Put(b store.Bucket, key, value []byte) error {
	if err := t.checkKey(b, key); err != nil {
		return err
	}
	if err := store.ValidateValue(value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	t.stage(b, key, value)
	return nil
}

// Insert stages a create-only write: sent as a plain INSERT, so a key stored
// meanwhile (or before, unread) makes the statement fail with a unique
// violation, and Update re-runs the function.
func (t *pgTx) Insert(b store.Bucket, key, value []byte) error {
	if err := t.checkKey(b, key); err != nil {
		return err
	}
	if err := store.ValidateValue(value); err != nil {
		return err
	}
	pk := pendingKey(b, key)
	w, staged := t.pending[pk]
	if staged && w.value != nil {
		return store.ErrExists
	}
	if value == nil {
		value = []byte{}
	}
	t.stage(b, key, value)
	// Over a staged delete the row may still be stored (the delete is not sent
	// yet): that is a replacement, written as Put writes it.
	t.pending[pk].create = !staged
	return nil
}

func (t *pgTx) Delete(b store.Bucket, key []byte) error {
	if err := t.checkKey(b, key); err != nil {
		return err
	}
	t.stage(b, key, nil)
	return nil
}

const (
	sqlUpsert = `INSERT INTO tokenvault_kv (bucket, key, value)
SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS w(k, v)
ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`
	sqlDelete = `DELETE FROM tokenvault_kv WHERE bucket = $1 AND key = ANY($2::bytea[])`
	// sqlInsert is create-only: no ON CONFLICT, a key that exists is a unique violation.
	sqlInsert = `INSERT INTO tokenvault_kv (bucket, key, value)
SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS w(k, v)`
)

// flush sends the pending writes in one round trip (writeBatch).
func (t *pgTx) flush() error {
	if t.err != nil || len(t.pending) == 0 {
		return t.err
	}
	if err := t.tx.SendBatch(t.ctx, t.writeBatch()); err != nil {
		return t.fail(err)
	}
	return nil
}

// writeBatch takes the pending writes into a batch, in (bucket, key) order so that
// concurrent transactions lock rows in the same order: one upsert, one delete and one
// create-only insert per bucket.
func (t *pgTx) writeBatch() *pgx.Batch {
	ws := make([]*write, 0, len(t.pending))
	for _, w := range t.pending {
		ws = append(ws, w)
	}
	clear(t.pending)
	slices.SortFunc(ws, func(a, b *write) int {
		return cmp.Or(strings.Compare(string(a.bucket), string(b.bucket)), bytes.Compare(a.key, b.key))
	})
	batch := &pgx.Batch{}
	for len(ws) > 0 {
		b := ws[0].bucket
		n := 1
		for n < len(ws) && ws[n].bucket == b {
			n++
		}
		var keys, values, deletes, ckeys, cvalues [][]byte
		for _, w := range ws[:n] {
			switch {
			case w.value == nil:
				deletes = append(deletes, w.key)
			case w.create:
				ckeys, cvalues = append(ckeys, w.key), append(cvalues, w.value)
			default:
				keys, values = append(keys, w.key), append(values, w.value)
			}
		}
		if len(keys) > 0 {
			batch.Queue(sqlUpsert, string(b), keys, values)
		}
		if len(deletes) > 0 {
			batch.Queue(sqlDelete, string(b), deletes)
		}
		if len(ckeys) > 0 {
			batch.Queue(sqlInsert, string(b), ckeys, cvalues)
		}
		ws = ws[n:]
	}
	return batch
}

// NextSequence takes the next value of the bucket's PostgreSQL sequence
// (seqName). nextval is not transactional: concurrent transactions never
// wait for each other here (no row is locked), values of transactions that
// roll back are skipped, and values increase in the order they are taken,
// which for concurrent transactions need not be their commit order.
func (t *pgTx) NextSequence(b store.Bucket) (uint64, error) {
	if err := t.checkWrite(b); err != nil {
		return 0, err
	}
	// One round trip when the sequence exists: nextval(NULL) is NULL.
	var n *int64
	if err := t.tx.QueryRow(t.ctx, `SELECT nextval(to_regclass($1))`, seqName(b)).Scan(&n); err != nil {
		return 0, t.fail(err)
	}
	if n == nil {
		name, _, err := t.ensureSequence(b)
		if err != nil {
			return 0, err
		}
		if err := t.tx.QueryRow(t.ctx, `SELECT nextval($1::regclass)`, name).Scan(&n); err != nil {
			return 0, t.fail(err)
		}
	}
	return uint64(*n), nil
}

// AdvanceSequence implements store.Tx. It never moves the sequence back, so
// it is safe while other processes take values: on a sequence that exists it
// takes values until the sequence has handed out atLeast, in one statement;
// on one this transaction creates (no other transaction can see it before
// COMMIT: a copy into an empty store) it sets it with setval, however far.
func (t *pgTx) AdvanceSequence(b store.Bucket, atLeast uint64) error {
	if err := t.checkWrite(b); err != nil {
		return err
	}
	if atLeast > math.MaxInt64 {
		return fmt.Errorf("store: postgres: sequence %d does not fit a bigint", atLeast)
	}
	name, created, err := t.ensureSequence(b)
	if err != nil {
		return err
	}
	if created {
		if atLeast == 0 {
			return nil
		}
		// setval(seq, v, true): the next nextval returns v+1. A new sequence has handed out
		// nothing yet: its last_value - 1 is the legacy count it continues from.
		if _, err := t.tx.Exec(t.ctx, `SELECT setval($1::regclass, greatest($2::bigint, (SELECT last_value - 1 FROM `+name+`)), true)`, name, int64(atLeast)); err != nil {
			return t.fail(err)
		}
		return nil
	}
	_, err = t.tx.Exec(t.ctx, `SELECT nextval($1::regclass) FROM generate_series(1, greatest(0, $2::bigint -
	(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM `+name+`)))`, name, int64(atLeast))
	if err != nil {
		return t.fail(err)
	}
	return nil
}

// seqName is the name of bucket b's sequence: bucket names may be longer
// than an identifier and hold '.' and '-', so it is a hash of the name.
func seqName(b store.Bucket) string {
	sum := sha256.Sum256([]byte(b))
	return "tokenvault_seq_" + hex.EncodeToString(sum[:8])
}

// ensureSequence returns the name of bucket b's sequence, and whether this
// call created it (in this transaction, so that no other sees it before
// COMMIT) because it did not exist yet (a concurrent creator makes one of the
// two transactions fail with a unique violation or duplicate_table, which
// Update re-runs). A new sequence continues from the bucket's row in
// tokenvault_sequence, where the first versions of this package counted.
func (t *pgTx) ensureSequence(b store.Bucket) (name string, created bool, err error) {
	name = seqName(b)
	var exists bool
	if err := t.tx.QueryRow(t.ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return "", false, t.fail(err)
	}
	if exists {
		return name, false, nil
	}
	var legacy int64
	if err := t.tx.QueryRow(t.ctx, `SELECT coalesce(max(value), 0) FROM tokenvault_sequence WHERE bucket = $1`, string(b)).Scan(&legacy); err != nil {
		return "", false, t.fail(err)
	}
	// Not IF NOT EXISTS: created must be exact (AdvanceSequence relies on no other transaction
	// seeing the sequence); a creator that committed since the check above makes this fail
	// with duplicate_table (42P07) or a unique violation, and Update re-runs the function.
	if _, err := t.tx.Exec(t.ctx, `CREATE SEQUENCE `+name+` START WITH `+strconv.FormatInt(legacy+1, 10)); err != nil {
		return "", false, t.fail(err)
	}
	// The name is a hash: the row names the bucket for Buckets (its value stays the legacy count).
	if _, err := t.tx.Exec(t.ctx, `INSERT INTO tokenvault_sequence (bucket, value) VALUES ($1, $2)
ON CONFLICT (bucket) DO NOTHING`, string(b), legacy); err != nil {
		return "", false, t.fail(err)
	}
	return name, true, nil
}

func (t *pgTx) Scan(b store.Bucket, prefix, start []byte, fn func(k, v []byte) error) error {
	if t.done {
		return store.ErrTxDone
	}
	if err := b.Validate(); err != nil {
		return err
	}
	if err := t.flush(); err != nil { // the function's own writes are visible
		return err
	}
	from := prefix
	if start != nil && bytes.Compare(start, prefix) > 0 {
		from = start
	}
	end := prefixEnd(prefix)
	t.scanning = append(t.scanning, b)
	defer func() { t.scanning = t.scanning[:len(t.scanning)-1] }()

	var keys, values [][]byte
	for page, after := scanFirstPage, false; ; page = min(4*page, scanMaxPage) {
		keys, values = keys[:0], values[:0]
		rows, err := t.tx.Query(t.ctx, scanSQL(after, end != nil), scanArgs(b, from, end, page)...)
		if err != nil {
			return t.fail(err)
		}
		var k, v []byte
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
			keys, values = append(keys, k), append(values, v)
			return nil
		})
		if err != nil {
			return t.fail(err)
		}
		for i, k := range keys {
			if err := fn(k, values[i]); err != nil {
				if errors.Is(err, store.ErrStopScan) {
					return nil
				}
				return err
			}
			if i%scanCtxEvery == scanCtxEvery-1 {
				if err := t.ctx.Err(); err != nil {
					return err
				}
			}
		}
		if len(keys) < page {
			return nil
		}
		from, after = keys[len(keys)-1], true
	}
}

func scanSQL(after, bounded bool) string {
	q := `SELECT key, value FROM tokenvault_kv WHERE bucket = $1 AND key >= $2`
	if after {
		q = `SELECT key, value FROM tokenvault_kv WHERE bucket = $1 AND key > $2`
	}
	if bounded {
		return q + ` AND key < $4 ORDER BY key LIMIT $3`
	}
	return q + ` ORDER BY key LIMIT $3`
}

func scanArgs(b store.Bucket, from, end []byte, limit int) []any {
	if from == nil {
		from = []byte{}
	}
	if end == nil {
		return []any{string(b), from, limit}
	}
	return []any{string(b), from, limit, end}
}

// prefixEnd returns the least key greater than every key with prefix p, or
// nil if there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] != 0xff {
			end := bytes.Clone(p[:i+1])
			end[i]++
			return end
		}
	}
	return nil
}

func (t *pgTx) Buckets() ([]store.Bucket, error) {
	if t.done {
		return nil, store.ErrTxDone
	}
	if err := t.flush(); err != nil { // the function's own writes are listed
		return nil, err
	}
	rows, err := t.tx.Query(t.ctx, `SELECT DISTINCT bucket FROM tokenvault_kv`)
	if err != nil {
		return nil, t.fail(err)
	}
	var out []store.Bucket
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&name}, func() error {
		if b := store.Bucket(name); b.Validate() == nil {
			out = append(out, b)
		}
		return nil
	}); err != nil {
		return nil, t.fail(err)
	}
	// Buckets that hold no key but have a sequence (tokenvault_sequence names every bucket
	// that has one).
	rows, err = t.tx.Query(t.ctx, `SELECT bucket FROM tokenvault_sequence
WHERE bucket NOT IN (SELECT DISTINCT bucket FROM tokenvault_kv)`)
	if err != nil {
		return nil, t.fail(err)
	}
	var seqOnly []store.Bucket
	if _, err := pgx.ForEachRow(rows, []any{&name}, func() error {
		if b := store.Bucket(name); b.Validate() == nil {
			seqOnly = append(seqOnly, b)
		}
		return nil
	}); err != nil {
		return nil, t.fail(err)
	}
	for _, b := range seqOnly {
		if n, err := t.Sequence(b); err != nil {
			return nil, err
		} else if n != 0 {
			out = append(out, b)
		}
	}
	slices.Sort(out) // byte order, whatever the database's collation
	return out, nil
}

// Sequence reads bucket b's PostgreSQL sequence (seqName) without taking a
// value, or the bucket's row in tokenvault_sequence when it has none yet.
func (t *pgTx) Sequence(b store.Bucket) (uint64, error) {
	if t.done {
		return 0, store.ErrTxDone
	}
	if err := b.Validate(); err != nil {
		return 0, err
	}
	if t.err != nil {
		return 0, t.err
	}
	name := seqName(b)
	var exists bool
	if err := t.tx.QueryRow(t.ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
		return 0, t.fail(err)
	}
	q := `SELECT coalesce(max(value), 0) FROM tokenvault_sequence WHERE bucket = $1`
	args := []any{string(b)}
	if exists {
		q, args = `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM `+name, nil
	}
	var n int64
	if err := t.tx.QueryRow(t.ctx, q, args...).Scan(&n); err != nil {
		return 0, t.fail(err)
	}
	return uint64(n), nil
}
