package action

import (
	"context"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

// TestBGPRefusals: status, drain, undrain and upgrade refuse a bgp spec
// before they reach any host (the Env has no way to reach one), with an
// error that says why and what is not supported.
func TestBGPRefusals(t *testing.T) {
	spec, err := cluster.Load("../cluster/testdata/full-bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rs := spec.HostsByRole(cluster.RoleRealServer)[0].Name
	ctx := context.Background()
	for name, run := range map[string]func(env *Env) error{
		"status":  func(env *Env) error { _, err := ReadStatus(ctx, env); return err },
		"drain":   func(env *Env) error { _, err := RunDrain(ctx, env, DrainRequest{Host: rs}); return err },
		"undrain": func(env *Env) error { _, err := RunDrain(ctx, env, DrainRequest{Host: rs, Undrain: true}); return err },
		"upgrade": func(env *Env) error { _, err := RunUpgrade(ctx, env, UpgradeOptions{}); return err },
	} {
		err := run(&Env{Spec: spec})
		if err == nil || !strings.Contains(err.Error(), name+" with ha.backend bgp is not supported yet") {
			t.Errorf("%s of a bgp spec: %v, want a refusal", name, err)
		}
	}
}
