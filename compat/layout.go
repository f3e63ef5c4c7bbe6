package compat

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

//go:embed testdata/inject testdata/stub
var embedded embed.FS

const (
	compatModule = "github.com/telltale-go/telltale/compat"
	rootModule   = "github.com/telltale-go/telltale"

	// stdCopyModule is the module path of the copy of a standard library
	// package: the package keeps its import path under it, and so do the
	// std-internal packages it needs, so that Go's internal-package rule
	// still lets it import them.
	stdCopyModule = "stdcopy"
)

// stubs stand in for std-internal packages that cannot be copied out of
// std (they link into the runtime): import path → directory under
// testdata/stub.
var stubs = map[string]string{"internal/godebug": "godebug"}

// A tree is one laid-out copy of a suite's package: a module of its own.
type tree struct {
	modDir     string // the module root
	pkgDir     string // the package's directory
	importPath string // the package's import path
	version    string // of the module, or of Go for a std package
}

// layout copies suite s into dir as a module that requires telltale and
// compat/wrap by replace directives, and, when wrapped is set, injects the
// suite's files and applies its patches. It returns the copy.
func (h *Harness) layout(ctx context.Context, s Suite, dir string, wrapped bool) (tree, error) {
	if err := os.RemoveAll(dir); err != nil {
		return tree{}, err
	}
	var (
		t   tree
		err error
	)
	if s.Module != "" {
		t, err = h.layoutModule(ctx, s, dir)
	} else {
		t, err = h.layoutStd(ctx, s, dir)
	}
	if err != nil || !wrapped {
		return t, err
	}
	if err := inject(s, t.pkgDir); err != nil {
		return t, err
	}
	for _, p := range s.Patches {
		if err := applyPatch(t.pkgDir, p); err != nil {
			return t, fmt.Errorf("%s: %w", s.Name, err)
		}
	}
	return t, nil
}

// moduleInfo is what go mod download -json says of a module.
type moduleInfo struct {
	Path, Version, Dir, GoMod, Error string
}

// download fetches module at the version compat/go.mod pins into the
// module cache (a no-op when it is there) and says where it is.
func (h *Harness) download(ctx context.Context, module string) (moduleInfo, error) {
	out, err := h.goCmd(ctx, h.compatDir, "mod", "download", "-json", module)
	var m moduleInfo
	if jerr := json.Unmarshal(out, &m); jerr != nil {
		return m, fmt.Errorf("go mod download %s: %v\n%s", module, err, out)
	}
	if m.Error != "" || err != nil {
		return m, fmt.Errorf("go mod download %s: %s %v", module, m.Error, err)
	}
	return m, nil
}

func (h *Harness) layoutModule(ctx context.Context, s Suite, dir string) (tree, error) {
	m, err := h.download(ctx, s.Module)
	if err != nil {
		return tree{}, err
	}
	if err := copyTree(m.Dir, dir); err != nil {
		return tree{}, err
	}
	// The suite's own go.mod, raised to compat's Go version (telltale
	// requires it), plus compat/wrap and telltale from this repository.
	_, err = h.goCmd(ctx, dir, "mod", "edit",
		"-go="+h.goVersion, "-toolchain=none",
		"-require="+compatModule+"@v0.0.0",
		"-replace="+compatModule+"="+h.compatDir,
		"-replace="+rootModule+"="+h.rootDir)
	if err != nil {
		return tree{}, err
	}
	if err := h.mergeGoSum(dir); err != nil {
		return tree{}, err
	}
	return tree{modDir: dir, pkgDir: dir, importPath: s.Module, version: m.Version}, nil
}

// mergeGoSum adds compat's go.sum to the copy's, so that the modules
// compat pins are verified against the hashes committed here.
func (h *Harness) mergeGoSum(dir string) error {
	ours, err := os.ReadFile(filepath.Join(h.compatDir, "go.sum"))
	if err != nil {
		return err
	}
	theirs, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(theirs)+"\n"+string(ours)), "\n")
	slices.Sort(lines)
	lines = slices.Compact(lines)
	return os.WriteFile(filepath.Join(dir, "go.sum"), []byte(strings.TrimSpace(strings.Join(lines, "\n"))+"\n"), 0o644)
}

// layoutStd copies the standard library package s.Std, tests included, and
// every std-internal package it imports (or a stub of it) into a module of
// its own, rewriting their import paths; vendored packages are imported
// from their own modules instead. Every import left afterwards is a public
// std package or a module's: the copy builds like any module.
func (h *Harness) layoutStd(ctx context.Context, s Suite, dir string) (tree, error) {
	gomod := fmt.Sprintf("module %s\n\ngo %s\n\nrequire %s v0.0.0\n\nreplace (\n\t%s => %s\n\t%s => %s\n)\n",
		stdCopyModule, h.goVersion, compatModule, compatModule, h.compatDir, rootModule, h.rootDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return tree{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		return tree{}, err
	}
	if err := h.mergeGoSum(dir); err != nil {
		return tree{}, err
	}

	// Copy the package and, transitively, the std-internal packages it
	// imports; then rewrite the imports of every copied file.
	copied := map[string]bool{} // std import path → copied
	queue := []string{s.Std}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if copied[p] {
			continue
		}
		copied[p] = true
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if stub, ok := stubs[p]; ok {
			if err := copyEmbedded("testdata/stub/"+stub, dst); err != nil {
				return tree{}, err
			}
			continue
		}
		src := filepath.Join(h.goroot, "src", filepath.FromSlash(p))
		if err := copyPackage(src, dst, p == s.Std); err != nil {
			return tree{}, err
		}
		imports, err := importsOf(dst)
		if err != nil {
			return tree{}, err
		}
		for _, imp := range imports {
			if isStdInternal(imp) && !strings.HasPrefix(imp, "vendor/") {
				queue = append(queue, imp)
			}
		}
	}
	rewrite := func(imp string) (string, bool) {
		switch {
		case copied[imp]:
			return stdCopyModule + "/" + imp, true
		case strings.HasPrefix(imp, "vendor/"):
			return strings.TrimPrefix(imp, "vendor/"), true
		}
		return "", false
	}
	for p := range copied {
		pkgDir := filepath.Join(dir, filepath.FromSlash(p))
		if err := rewriteImports(pkgDir, rewrite); err != nil {
			return tree{}, err
		}
		imports, err := importsOf(pkgDir)
		if err != nil {
			return tree{}, err
		}
		for _, imp := range imports {
			if isStdInternal(imp) {
				return tree{}, fmt.Errorf("%s: the copy of %s still imports %s", s.Name, p, imp)
			}
		}
	}
	return tree{
		modDir:     dir,
		pkgDir:     filepath.Join(dir, filepath.FromSlash(s.Std)),
		importPath: stdCopyModule + "/" + s.Std,
		version:    h.goRelease,
	}, nil
}

// isStdInternal reports whether imp is a standard library package that
// code outside std cannot import: an internal or a vendored one.
func isStdInternal(imp string) bool {
	first, _, _ := strings.Cut(imp, "/")
	if strings.Contains(first, ".") || first == stdCopyModule {
		return false // a module's package, or already rewritten
	}
	return strings.HasPrefix(imp, "vendor/") || slices.Contains(strings.Split(imp, "/"), "internal")
}

// copyPackage copies the Go files of the package in src (with its tests
// and testdata when withTests is set) to dst.
func copyPackage(src, dst string, withTests bool) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case e.IsDir() && name == "testdata" && withTests:
			if err := copyTree(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
				return err
			}
		case e.IsDir() || !strings.HasSuffix(name, ".go"):
		case strings.HasSuffix(name, "_test.go") && !withTests:
		default:
			if err := copyFile(filepath.Join(src, name), filepath.Join(dst, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// importsOf lists the imports of every Go file in dir.
func importsOf(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var imports []string
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			return nil, err
		}
		for _, spec := range af.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return nil, err
			}
			imports = append(imports, p)
		}
	}
	slices.Sort(imports)
	return slices.Compact(imports), nil
}

// rewriteImports replaces, in every Go file in dir, each import path for
// which rewrite returns true by the path it returns. Only import
// declarations are touched.
func rewriteImports(dir string, rewrite func(string) (string, bool)) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return err
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		var out bytes.Buffer
		last := 0
		for _, spec := range af.Imports {
			p, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			np, ok := rewrite(p)
			if !ok {
				continue
			}
			start := fset.Position(spec.Path.Pos()).Offset
			end := fset.Position(spec.Path.End()).Offset
			out.Write(src[last:start])
			out.WriteString(strconv.Quote(np))
			last = end
		}
		if last == 0 {
			continue
		}
		out.Write(src[last:])
		if err := os.WriteFile(f, out.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// inject adds the suite's files from testdata/inject to the package.
func inject(s Suite, pkgDir string) error {
	if s.Inject == "" {
		return nil
	}
	return copyEmbedded(path.Join("testdata/inject", s.Inject), pkgDir)
}

func applyPatch(pkgDir string, p Patch) error {
	f := filepath.Join(pkgDir, filepath.FromSlash(p.File))
	src, err := os.ReadFile(f)
	if err != nil {
		return err
	}
	if n := bytes.Count(src, []byte(p.Old)); n != 1 {
		return fmt.Errorf("patch of %s: %q occurs %d times, want once (did the package change?)", p.File, p.Old, n)
	}
	return os.WriteFile(f, bytes.Replace(src, []byte(p.Old), []byte(p.New), 1), 0o644)
}

// copyEmbedded copies the files of an embedded directory into dst.
func copyEmbedded(dir, dst string) error {
	entries, err := embedded.ReadDir(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		b, err := embedded.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies a directory tree, writable (the module cache is not).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, info.Mode().Perm()|0o200)
}
