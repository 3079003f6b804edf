package main

import (
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/vmtests"
)

// The VM commands themselves run in vmtests' scenarios (the same code);
// here, what they say when called wrongly or with nothing running.
func TestVMCommandErrors(t *testing.T) {
	code, _, errOut := run(t, "vmtest", "--scenario", "seed-dr,nosuch")
	if code != ExitUsage || !strings.Contains(errOut, `no scenario "nosuch"`) {
		t.Errorf("unknown scenario: exit %d, %q", code, errOut)
	}
	for _, sc := range vmtests.Scenarios {
		if !strings.Contains(errOut, sc.Name) {
			t.Errorf("the error does not list scenario %s: %q", sc.Name, errOut)
		}
	}
	state := t.TempDir()
	for _, args := range [][]string{{"vm", "ssh", "--state", state, "rs1"}, {"vm", "down", "--state", state}} {
		code, _, errOut := run(t, args...)
		if code != ExitFailure || !strings.Contains(errOut, "is `lvsforge vm up` running?") {
			t.Errorf("%v with nothing running: exit %d, %q", args, code, errOut)
		}
	}
	if code, _, errOut := run(t, "vm", "ssh", "--state", state); code != ExitUsage || !strings.Contains(errOut, "which host?") {
		t.Errorf("vm ssh without a host: exit %d, %q", code, errOut)
	}
}
