package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: no input makes the parser panic or hang, every failure is a
// spec error with a position, and whatever it accepts passes validation again.
// Run: go test ./cluster -run '^$' -fuzz FuzzParse -fuzztime 30s
func FuzzParse(f *testing.F) {
	f.Add(ExampleYAML(KernelOrgSource()))
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
	for _, tc := range invalidSpecs {
		f.Add([]byte(tc.new))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data, "fuzz.yaml", "testdata")
		if err != nil {
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			for _, e := range es {
				if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("error does not name the file: %v", e)
				}
			}
			return
		}
		v := &validator{s: s, pos: map[string]Pos{}, skip: map[string]bool{}}
		v.validate()
		if len(v.errs) > 0 {
			t.Fatalf("accepted spec fails validation a second time: %v", v.errs)
		}
	})
}
