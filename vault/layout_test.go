package vault

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDocStorageTable keeps doc.go's storage table and layout.go in step, both ways: every
// bucket and meta key declared has a row, every row names a declared one, and nothing of the
// layout is declared outside layout.go. doc.go's map must list every file, too.
func TestDocStorageTable(t *testing.T) {
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	buckets, metas := map[string]bool{}, map[string]bool{}
	var doc string
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil && name == "doc.go" {
			doc = f.Doc.Text()
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gd.Specs {
				vs, ok := spec.(*ast.ValueSpec)
				if !ok {
					continue
				}
				for i, id := range vs.Names {
					var into map[string]bool
					switch {
					case isBucketType(vs.Type):
						into = buckets
					case strings.HasPrefix(id.Name, "meta") && gd.Tok == token.VAR:
						into = metas
					default:
						continue
					}
					if name != "layout.go" {
						t.Errorf("%s declares %s: the storage layout belongs in layout.go", name, id.Name)
					}
					into[stringIn(t, vs.Values[i])] = true
				}
			}
		}
	}
	if len(buckets) == 0 || len(metas) == 0 {
		t.Fatalf("found no buckets (%d) or meta keys (%d) in layout.go", len(buckets), len(metas))
	}
	for _, name := range names {
		if !strings.HasSuffix(name, "_test.go") && name != "doc.go" && !strings.Contains(doc, "\t"+name+" ") {
			t.Errorf("doc.go's map does not list %s", name)
		}
	}
	docBuckets, docMetas := storageTable(t, doc)
	compare(t, "bucket", buckets, docBuckets)
	compare(t, "meta key", metas, docMetas)
}

func isBucketType(e ast.Expr) bool {
	sel, ok := e.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Bucket" && sel.X.(*ast.Ident).Name == "store"
}

// stringIn returns the string literal of "x" or []byte("x").
func stringIn(t *testing.T, e ast.Expr) string {
	if c, ok := e.(*ast.CallExpr); ok && len(c.Args) == 1 {
		e = c.Args[0]
	}
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		t.Fatalf("layout value %T is not a string literal", e)
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storageTable reads the rows of doc.go's "Storage layout" section: the first word of each
// indented line is a bucket; in rows of bucket meta the second is a quoted key.
func storageTable(t *testing.T, doc string) (buckets, metas map[string]bool) {
	buckets, metas = map[string]bool{}, map[string]bool{}
	_, section, ok := strings.Cut(doc, "# Storage layout\n")
	if !ok {
		t.Fatal(`doc.go has no "# Storage layout" section`)
	}
	section, _, _ = strings.Cut(section, "\n# ")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		f := strings.Fields(line)
		buckets[f[0]] = true
		if f[0] == "meta" && len(f) > 1 {
			k, err := strconv.Unquote(f[1])
			if err != nil {
				t.Errorf("doc.go meta row %q: the key must be quoted", line)
				continue
			}
			metas[k] = true
		}
	}
	return buckets, metas
}

func compare(t *testing.T, what string, declared, documented map[string]bool) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(declared)) {
		if !documented[k] {
			t.Errorf("%s %q is declared in layout.go but missing from doc.go's storage table", what, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(documented)) {
		if !declared[k] {
			t.Errorf("doc.go's storage table lists %s %q, which layout.go does not declare", what, k)
		}
	}
}
