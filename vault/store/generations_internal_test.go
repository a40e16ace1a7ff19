package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestGenerationsKeepEachKeyOnce runs random puts (new keys and
// overwrites), deletes and re-puts of deleted keys into buckets of several
// generations, merged with the key filter, without it, and without the
// journal. After each round it compares every read with a model, and at
// the end it reads the file itself: several generations exist, every key is
// in exactly one of them, and they hold exactly the model.
func TestGenerationsKeepEachKeyOnce(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts Options
	}{
		{"journal-filter", Options{filterMin: 16}},
		{"journal-no-filter", Options{NoKeyFilter: true}},
		{"plain", Options{NoJournal: true}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			o := mode.opts
			o.genKeys = 16
			path := filepath.Join(t.TempDir(), "vault.db")
			s, err := Open(path, o)
			if err != nil {
				t.Fatal(err)
			}
			if s.j != nil && !o.NoKeyFilter {
				waitFilter(t, s)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			model := map[Bucket]map[string]string{"tokens": {}, "index": {}}
			for round := range 12 {
				randomChanges(t, s, rng, model, 40, 5, fmt.Sprint(round), false, round%2 == 0)
				checkModel(t, s, model)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			checkFile(t, path, model)
			s, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkModel(t, s, model)
		})
	}
}

// randomChanges runs one Update of n random changes to the buckets of model,
// keeping model in step: every `every` changes, a delete and then an
// overwrite of a key of the model; otherwise a key k000–k399, new or deleted
// before, by Put, or with insert by Insert (which leaves a stored key
// alone). Values carry tag. With merge it then merges the journal.
func randomChanges(t *testing.T, s *Bolt, rng *rand.Rand, model map[Bucket]map[string]string, n, every int, tag string, insert, merge bool) {
	t.Helper()
	buckets := slices.Sorted(maps.Keys(model))
	err := s.Update(t.Context(), func(tx Tx) error {
		for i := range n {
			b := buckets[rng.IntN(len(buckets))]
			m := model[b]
			switch keys := slices.Sorted(maps.Keys(m)); {
			case len(keys) > 0 && i%every == 0: // delete
				k := keys[rng.IntN(len(keys))]
				if err := tx.Delete(b, []byte(k)); err != nil {
					return err
				}
				delete(m, k)
			case len(keys) > 0 && i%every == 1: // overwrite
				k := keys[rng.IntN(len(keys))]
				v := fmt.Sprintf("o%s-%d", tag, i)
				if err := tx.Put(b, []byte(k), []byte(v)); err != nil {
					return err
				}
				m[k] = v
			default: // a new key, or one deleted before
				k := fmt.Sprintf("k%03d", rng.IntN(400))
				v := fmt.Sprintf("n%s-%d", tag, i)
				if insert {
					if err := tx.Insert(b, []byte(k), []byte(v)); errors.Is(err, ErrExists) {
						continue
					} else if err != nil {
						return err
					}
				} else if err := tx.Put(b, []byte(k), []byte(v)); err != nil {
					return err
				}
				m[k] = v
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if merge && s.j != nil {
		if err := s.j.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

func waitFilter(t testing.TB, s *Bolt) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.j.filters.inUse.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no key filter after 20 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// checkModel compares s's Get, Scan and Buckets with model.
func checkModel(t *testing.T, s *Bolt, model map[Bucket]map[string]string) {
	t.Helper()
	err := s.View(t.Context(), func(tx Tx) error {
		for b, m := range model {
			for i := range 400 {
				k := fmt.Sprintf("k%03d", i)
				want, ok := m[k]
				got := tx.Get(b, []byte(k))
				if ok != (got != nil) || string(got) != want {
					t.Errorf("Get(%s, %s) = %q, want %q (present %v)", b, k, got, want, ok)
				}
			}
			var keys []string
			if err := tx.Scan(b, nil, nil, func(k, v []byte) error {
				if m[string(k)] != string(v) {
					t.Errorf("Scan(%s): %s = %q, want %q", b, k, v, m[string(k)])
				}
				keys = append(keys, string(k))
				return nil
			}); err != nil {
				return err
			}
			if want := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, want) {
				t.Errorf("Scan(%s) = %d keys in this order %v, want %d: %v", b, len(keys), keys, len(want), want)
			}
			// A prefix and a start inside it.
			var sub []string
			if err := tx.Scan(b, []byte("k1"), []byte("k15"), func(k, _ []byte) error {
				sub = append(sub, string(k))
				return nil
			}); err != nil {
				return err
			}
			var want []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				if k >= "k15" && k < "k2" {
					want = append(want, k)
				}
			}
			if !slices.Equal(sub, want) {
				t.Errorf("Scan(%s, k1, from k15) = %v, want %v", b, sub, want)
			}
		}
		got, err := tx.Buckets()
		if err != nil {
			return err
		}
		if !slices.Equal(got, []Bucket{"index", "tokens"}) {
			t.Errorf("Buckets() = %v, want [index tokens]", got)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkFile reads the closed file at path with bbolt: each bucket of model
// must have several generations, each key in one only, holding the model.
func checkFile(t *testing.T, path string, model map[Bucket]map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(btx *bolt.Tx) error {
		for b, m := range model {
			got := map[string]string{}
			trees := 0
			for n := 0; ; n++ {
				name := []byte(b)
				if n > 0 {
					name = genName(nil, []byte(b), n)
				}
				bk := btx.Bucket(name)
				if bk == nil {
					break
				}
				trees++
				if err := bk.ForEach(func(k, v []byte) error {
					if _, dup := got[string(k)]; dup {
						t.Errorf("bucket %s: key %s in two generations", b, k)
					}
					got[string(k)] = string(v)
					return nil
				}); err != nil {
					return err
				}
			}
			if trees < 3 {
				t.Errorf("bucket %s: %d B-trees, want several (16 new keys each)", b, trees)
			}
			if !maps.Equal(got, m) {
				t.Errorf("bucket %s: the file holds %d keys, the model %d, or their values differ", b, len(got), len(m))
			}
			meta := btx.Bucket(metaBucket)
			v := meta.Get(append(slices.Clip(genKeyPrefix), b...))
			if len(v) != 8 || binary.BigEndian.Uint64(v) == 0 || binary.BigEndian.Uint64(v) > 16 {
				t.Errorf("bucket %s: count of new keys in the newest generation = %x, want 1..16", b, v)
			}
		}
		// No bucket but those of the model, their generations and the meta bucket.
		return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if _, ok := model[Bucket(bucketOf(name))]; !ok && !bytes.Equal(name, metaBucket) {
				t.Errorf("unexpected bbolt bucket %q", name)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkGetGenerations reads present keys, 100 per View, spread evenly
// over 1M random keys of one bucket: in one B-tree, and in 8 generations
// (the keys of the oldest cost 8 descents). ns/key is per key read.
func BenchmarkGetGenerations(b *testing.B) {
	const keys = 1 << 20
	for _, gens := range []int{1, 8} {
		b.Run(fmt.Sprintf("generations=%d", gens), func(b *testing.B) {
			o := Options{NoSync: true, genKeys: keys / gens}
			s, err := Open(filepath.Join(b.TempDir(), "vault.db"), o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			all := make([][]byte, keys)
			for i := range all {
				all[i] = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
			}
			for i := 0; i < keys; i += 10000 {
				if err := s.Update(b.Context(), func(tx Tx) error {
					for _, k := range all[i:min(i+10000, keys)] {
						if err := tx.Put("tokens", k, k); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				if (i/10000)%16 == 15 {
					if err := s.j.flush(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := s.j.flush(b.Context()); err != nil {
				b.Fatal(err)
			}
			waitFilter(b, s)
			batch := make([][]byte, 100)
			b.ResetTimer()
			for b.Loop() {
				for i := range batch {
					batch[i] = all[rng.IntN(keys)]
				}
				if err := s.View(b.Context(), func(tx Tx) error {
					for i, v := range tx.GetMany("tokens", batch) {
						if v == nil {
							return fmt.Errorf("key %d absent", i)
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/key")
		})
	}
}

func bucketOf(name []byte) []byte {
	b, _ := splitGenName(name)
	return b
}

// TestGenerationsAcrossModes reopens one file in turn with the journal and
// its key filter, without the journal, and with the journal but no filter,
// each time putting, overwriting and deleting keys of buckets of several
// generations (the count of the newest generation and the filter's view of
// the generations carrying over from one mode to the next): every read
// matches a model, and the file holds every key in one generation only.
func TestGenerationsAcrossModes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	modes := []Options{{filterMin: 16}, {NoJournal: true}, {NoKeyFilter: true}}
	rng := rand.New(rand.NewPCG(5, 6))
	model := map[Bucket]map[string]string{"tokens": {}, "index": {}}
	for round := range 9 {
		o := modes[round%len(modes)]
		o.genKeys = 8
		s, err := Open(path, o)
		if err != nil {
			t.Fatal(err)
		}
		if s.j != nil && !o.NoKeyFilter {
			waitFilter(t, s)
		}
		for step := range 6 {
			randomChanges(t, s, rng, model, 15, 4, fmt.Sprintf("%d-%d", round, step), true, step%2 == 1)
		}
		checkModel(t, s, model)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	checkFile(t, path, model)
}

// TestGenerationsCopiedWhole: a store whose buckets have several
// generations, and a sequence, is copied whole by Snapshot (the file as it
// is, restored with RestoreFile and opened with the default generation size)
// and by Copy (into a store with generations of another size): every key
// once, with its value, the sequence, and the same counts; Check passes.
func TestGenerationsCopiedWhole(t *testing.T) {
	dir := t.TempDir()
	o := Options{genKeys: 8}
	src, err := Open(filepath.Join(dir, "src.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	model := map[Bucket]map[string]string{"tokens": {}, "index": {}}
	rng := rand.New(rand.NewPCG(7, 8))
	for round := range 10 {
		err := src.Update(t.Context(), func(tx Tx) error {
			for i := range 20 {
				b := Bucket("tokens")
				if i%3 == 0 {
					b = "index"
				}
				k := fmt.Sprintf("k%03d", rng.IntN(300))
				if _, ok := model[b][k]; ok && i%4 == 0 {
					if err := tx.Delete(b, []byte(k)); err != nil {
						return err
					}
					delete(model[b], k)
					continue
				}
				v := fmt.Sprintf("v%d-%d", round, i)
				if err := tx.Put(b, []byte(k), []byte(v)); err != nil {
					return err
				}
				model[b][k] = v
			}
			_, err := tx.NextSequence("tokens")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.j.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want, err := Counts(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, s *Bolt) {
		t.Helper()
		got, err := Counts(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if !equalCounts(got, want) {
			t.Errorf("%s: counts %v, want %v", name, got, want)
		}
		if err := s.Check(); err != nil {
			t.Errorf("%s: Check: %v", name, err)
		}
		checkModel(t, s, model)
	}
	check("source", src)
	var buf bytes.Buffer
	if _, err := src.Snapshot(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored.db")
	if _, err := RestoreFile(&buf, restored); err != nil {
		t.Fatal(err)
	}
	r, err := Open(restored, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check("restored snapshot", r)
	c, err := Open(filepath.Join(dir, "copy.db"), Options{genKeys: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Copy(t.Context(), c, src); err != nil {
		t.Fatal(err)
	}
	check("copy", c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	checkFile(t, filepath.Join(dir, "copy.db"), model)
}
