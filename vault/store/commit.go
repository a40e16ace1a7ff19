package store

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Group commit.
//
// Update appends a request to s.queue and waits for it to be answered. A
// single committer goroutine takes the first queued request plus everything
// queued behind it (at most maxGroup), runs all their functions in one bbolt
// read-write transaction, commits it (one fsync), and answers them all. While
// it commits, new requests queue up and form the next group. This committer
// (Options.NoJournal) never waits for company: a lone request is committed at
// once. The journal's committer (journaled.go) waits Options.CommitDelay
// after a group of commitCompany or more, for the next group to fill.
//
// A function that fails without having written anything (the common case:
// validation after reads) is simply answered with its error; the transaction
// goes on. A function that fails after writing, or panics, leaves partial
// writes in the transaction, and bbolt has no savepoints: the transaction is
// rolled back, the failing caller is answered, and the functions that had
// succeeded before it are run again in a fresh transaction, followed by the
// ones not yet run. To bound the rework, the re-runs in one group are limited
// to the group's size; beyond that, after a rollback the functions that had
// succeeded are re-run and committed on their own (one more fsync), and the
// ones not yet run follow in another transaction. So with deterministic
// functions, a group of n callers runs at most 3n functions in all.

const (
	stateQueued   int32 = iota // in the queue; the caller may still cancel
	stateClaimed               // taken by the committer; result will be sent
	stateCanceled              // given up by the caller; never run
)

type request struct {
	ctx   context.Context
	fn    func(Tx) error
	state atomic.Int32
	done  chan struct{} // closed when err is set
	err   error

	answered bool // owned by the committer goroutine
}

// errGoexit answers the callers whose group was in flight when a function
// called runtime.Goexit (such as testing.T.FailNow) on the committer.
var errGoexit = fmt.Errorf("%w: runtime.Goexit called (t.FailNow in a transaction function?)", ErrPanic)

// committer runs groups of requests until the store is closed and the queue
// is empty.
func (s *Bolt) committer() {
	g := &group{s: s}
	normal := false
	defer func() {
		if normal {
			close(s.stopped)
			return
		}
		// A function called runtime.Goexit, which cannot be stopped: release
		// the write transaction, fail the group in flight and carry on in a
		// new goroutine.
		g.abort(errGoexit)
		go s.committer()
	}()
	var buf []*request
	for {
		batch, ok := s.next(buf[:0])
		if !ok {
			normal = true
			return
		}
		g.run(batch)
		clear(batch)
		buf = batch
	}
}

// next waits for queued requests and appends up to maxGroup of them to buf.
// It returns false when the store is closed and the queue is empty.
func (s *Bolt) next(buf []*request) ([]*request, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 {
		if s.closed {
			return nil, false
		}
		s.cond.Wait()
	}
	return s.takeQueued(buf), true
}

// takeQueued moves queued requests to buf, up to maxGroup in buf; s.mu is held.
func (s *Bolt) takeQueued(buf []*request) []*request {
	n := min(len(s.queue), s.maxGroup-len(buf))
	buf = append(buf, s.queue[:n]...)
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	return buf
}

// group is the committer's state for the group in flight.
type group struct {
	s     *Bolt
	batch []*request
	btx   *bolt.Tx // open write transaction, if any
}

func (g *group) run(batch []*request) {
	g.batch = batch
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if !r.state.CompareAndSwap(stateQueued, stateClaimed) {
			continue // the caller gave up; it is not waiting for an answer
		}
		if err := r.ctx.Err(); err != nil {
			g.answer(r, err)
			continue
		}
		live = append(live, r)
	}
	// Segments still to run, each in its own transaction, last one first.
	var todo [][]*request
	if len(live) > 0 {
		todo = append(todo, live)
	}
	budget := len(live)
	for len(todo) > 0 {
		seg := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		again, after := g.runTx(seg, &budget)
		if len(after) > 0 {
			todo = append(todo, after)
		}
		if len(again) > 0 {
			todo = append(todo, again)
		}
	}
	g.batch = nil
}

// runTx runs pending in one transaction and commits it. After a rollback
// it returns the requests to run again in a new transaction (again), and
// those to run in yet another transaction after that one commits (after).
func (g *group) runTx(pending []*request, budget *int) (again, after []*request) {
	s := g.s
	btx, err := s.db.Begin(true)
	if err != nil {
		err = fmt.Errorf("store: begin write transaction: %w", err)
		for _, r := range pending {
			g.fail(r, err)
		}
		return nil, nil
	}
	g.btx = btx
	gt := newGroupTx(btx, s.genKeys)
	ok := make([]*request, 0, len(pending))
	for i, r := range pending {
		rollback, err := call(gt, r)
		if err == nil {
			ok = append(ok, r)
			continue
		}
		if !rollback {
			g.fail(r, err)
			continue // r wrote nothing: the transaction is as if r never ran
		}
		_ = btx.Rollback()
		g.btx = nil
		s.stats.rollbacks.Add(1)
		s.stats.reruns.Add(uint64(len(ok)))
		g.fail(r, err)
		rest := pending[i+1:]
		if len(ok) <= *budget {
			// Re-run the successful ones and go on in the same transaction.
			*budget -= len(ok)
			return append(ok, rest...), nil
		}
		// Out of budget: re-run and commit the successful ones on their own,
		// so that later failures do not make them run yet again.
		return ok, rest
	}
	if len(ok) == 0 {
		// Every function failed without writing: nothing to commit.
		_ = btx.Rollback()
		g.btx = nil
		return nil, nil
	}
	err = gt.w.flush()
	if err == nil {
		err = btx.Commit()
	} else {
		_ = btx.Rollback()
	}
	g.btx = nil
	if err != nil {
		err = fmt.Errorf("store: commit: %w", err)
		for _, r := range ok {
			g.fail(r, err)
		}
		return nil, nil
	}
	s.stats.commits.Add(1)
	s.stats.committed.Add(uint64(len(ok)))
	for _, r := range ok {
		g.answer(r, nil)
	}
	return nil, nil
}

// call runs r.fn in gt. rollback reports whether the transaction must be
// rolled back because fn failed after writing, or panicked.
func call(gt *groupTx, r *request) (rollback bool, err error) {
	t := &boltTx{g: gt, writable: true}
	defer func() {
		t.finish()
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
			rollback = true
		}
	}()
	err = r.fn(t)
	return err != nil && t.dirty, err
}

func (g *group) answer(r *request, err error) {
	r.err = err
	r.answered = true
	close(r.done)
}

func (g *group) fail(r *request, err error) {
	g.s.stats.failed.Add(1)
	g.answer(r, err)
}

// abort releases the write transaction and answers every request of the
// group in flight that is still waiting, with err.
func (g *group) abort(err error) {
	if g.btx != nil {
		_ = g.btx.Rollback()
		g.btx = nil
	}
	for _, r := range g.batch {
		if r.state.Load() == stateClaimed && !r.answered {
			g.fail(r, err)
		}
	}
	g.batch = nil
}

// panicError is returned to the caller whose function panicked.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string {
	return fmt.Sprintf("%v: %v\n\n%s", ErrPanic, e.value, e.stack)
}

func (e *panicError) Unwrap() []error {
	if err, ok := e.value.(error); ok {
		return []error{ErrPanic, err}
	}
	return []error{ErrPanic}
}

// NewPanicError returns the error that an Update whose function panicked with
// value returns: it wraps ErrPanic (and value, if value is an error), and its
// text holds value and stack. It is for the other backends of Store, so that
// every backend reports panics alike.
func NewPanicError(value any, stack []byte) error {
	return &panicError{value: value, stack: stack}
}
