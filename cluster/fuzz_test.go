package cluster_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/roles"
)

// FuzzParse: no input makes the parser panic or hang; every failure is a
// spec error naming the file at a line and column; whatever it accepts
// passes validation again and renders: validation is what stands between a
// spec and the templates, so an accepted spec that cannot render is a hole
// in it. Run: go test ./cluster -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	f.Add(cluster.ExampleYAML(cluster.KernelOrgSource()))
	for _, p := range []string{"testdata/base.yaml", "testdata/full.yaml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	specs, _ := filepath.Glob("../roles/testdata/specs/*.yaml")
	for _, p := range specs {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	for _, b := range cluster.InvalidSpecEdits() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := cluster.Parse(data, "fuzz.yaml", "testdata")
		if err != nil {
			es, ok := err.(cluster.Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 || !strings.HasPrefix(e.Error(), "fuzz.yaml:") {
					t.Fatalf("error without file, line and column: %#v", e)
				}
			}
			return
		}
		if errs := cluster.Revalidate(s); len(errs) > 0 {
			t.Fatalf("accepted spec fails validation a second time: %v", errs)
		}
		hosts, err := roles.Render(s)
		if err != nil {
			t.Fatalf("accepted spec does not render: %v", err)
		}
		if err := roles.WriteTree(filepath.Join(t.TempDir(), "out"), s.Metadata.Name, hosts); err != nil {
			t.Fatalf("accepted spec does not write: %v", err)
		}
	})
}
