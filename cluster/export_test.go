package cluster

// What the external tests (package cluster_test, which may import roles)
// need from the inside.

// InvalidSpecEdits are the texts the invalid-spec table puts into base.yaml.
func InvalidSpecEdits() [][]byte {
	var out [][]byte
	for _, tc := range invalidSpecs {
		out = append(out, []byte(tc.new))
	}
	return out
}

// Revalidate runs the validator again over a parsed spec, positions and all.
func Revalidate(s *Spec) Errors {
	v := &validator{s: s, pos: s.pos, skip: map[string]bool{}}
	v.validate()
	return v.errs
}
