package logic

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Logic speaks domain types: the client protocol's envelopes are the
// adapter's (internal/adapter), reached only through Encoder.
func TestNoEnvelopeImports(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ast, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "github.com/magpie-im/magpie/proto/magpiepb" || strings.HasPrefix(p, "github.com/magpie-im/magpie/internal/adapter") {
				t.Errorf("%s imports %s; logic must not see the envelope types", f, p)
			}
		}
	}
}
