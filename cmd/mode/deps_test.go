package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestLayering: each dependency points one way. The runtime reads packs and
// imports nothing from modelpack (the schema is runtime/manifest); the
// browser runtime and mode, which run models, link the readers (hf: repos
// are indexed on load through modelpack/hfrepo) but not the pack writer.
func TestLayering(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	writers := []string{"/modelpack/pack", "/modelpack/distill", "/modelpack/gptq", "/modelpack/synth"}
	for _, tt := range []struct {
		pkgs   []string
		env    []string
		forbid []string
	}{
		{[]string{"../../runtime/..."}, nil, []string{"/modelpack/"}},
		{[]string{"../wasm"}, []string{"GOOS=js", "GOARCH=wasm"}, writers},
		{[]string{"."}, nil, writers},
	} {
		cmd := exec.Command("go", append([]string{"list", "-deps"}, tt.pkgs...)...)
		cmd.Env = append(os.Environ(), tt.env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %v: %v", tt.pkgs, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range tt.forbid {
				if strings.Contains(dep, f) {
					t.Errorf("%v %v depends on %s", tt.env, tt.pkgs, dep)
				}
			}
		}
	}
}

// writerFiles hold the writers that share a package with a reader mode
// needs (safetensors, GGUF): the package is linked, so TestLayering's
// package check cannot see them; TestNoWritersLinked checks the symbols.
var writerFiles = map[string][]string{
	"github.com/moderuntime/mode/modelpack/safetensors": {"../../modelpack/safetensors/writer.go"},
	"github.com/moderuntime/mode/modelpack/gguf":        {"../../modelpack/gguf/writer.go", "../../modelpack/gguf/export.go", "../../modelpack/gguf/quantize.go"},
}

// TestNoWritersLinked: the mode binary holds none of the functions of the
// safetensors and GGUF writers (the linker drops what nothing calls; this
// fails once something in mode does). It builds without inlining so that
// every writer function mode calls keeps a symbol. The wasm build is not checked this
// way (go tool nm cannot read it); TestLayering keeps the pack writer out
// of it.
func TestNoWritersLinked(t *testing.T) {
	if testing.Short() {
		t.Skip("builds mode")
	}
	// -l (for this module's packages, where writers and their callers are):
	// an inlined function leaves no symbol, so a small writer (NewWriter,
	// SetMetadata) called from mode would pass unseen with inlining on.
	bin := filepath.Join(t.TempDir(), "mode")
	if out, err := exec.Command("go", "build", "-gcflags=github.com/moderuntime/mode/...=-l", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	linked := map[string]bool{}
	for _, ln := range strings.Split(string(out), "\n") {
		if f := strings.Fields(ln); len(f) >= 3 {
			linked[f[len(f)-1]] = true
		}
	}
	funcs := 0
	for pkg, files := range writerFiles {
		for _, file := range files {
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok {
					continue
				}
				funcs++
				for _, sym := range symbols(pkg, fd) {
					if linked[sym] {
						t.Errorf("mode links %s (%s), a writer's", sym, file)
					}
				}
			}
		}
	}
	if funcs < 10 {
		t.Fatalf("found %d writer functions: the files moved?", funcs)
	}
}

// symbols are the names the linker gives fd: pkg.Name, or for a method
// pkg.Recv.Name and pkg.(*Recv).Name.
func symbols(pkg string, fd *ast.FuncDecl) []string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return []string{pkg + "." + fd.Name.Name}
	}
	typ := fd.Recv.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if g, ok := typ.(*ast.IndexExpr); ok {
		typ = g.X
	}
	id, ok := typ.(*ast.Ident)
	if !ok {
		return nil
	}
	return []string{pkg + "." + id.Name + "." + fd.Name.Name, pkg + ".(*" + id.Name + ")." + fd.Name.Name}
}
