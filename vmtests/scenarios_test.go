package vmtests

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scenario tests share one Suite, so consecutive scenarios that fit the
// same cluster reuse its VMs, as `lvsforge vmtest --scenario all` does;
// `go test -run TestScenarios/wrr` boots a cluster for that scenario alone.
var shared struct {
	mu    sync.Mutex
	suite *Suite
	log   testLog
	out   string
}

// testLog forwards the suite's progress lines to the test running now.
type testLog struct {
	mu sync.Mutex
	t  testing.TB
}

func (l *testLog) set(t testing.TB) {
	l.mu.Lock()
	l.t = t
	l.mu.Unlock()
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.t != nil {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func closeSharedSuite() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.suite != nil {
		shared.suite.Close()
	}
	if shared.out != "" && os.Getenv(outEnv) == "" {
		os.RemoveAll(shared.out)
	}
}

func runScenario(t *testing.T, sc *Scenario) {
	clusterPrereqs(t)
	spec := exampleSpec(t)
	testArtifacts(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.log.set(t)
	defer shared.log.set(nil)
	if shared.suite == nil {
		out := os.Getenv(outEnv)
		if out == "" {
			var err error
			if out, err = os.MkdirTemp("", "lvsforge-vmtest-"); err != nil {
				t.Fatal(err)
			}
			shared.out = out
		}
		shared.suite = &Suite{Base: spec, Opts: Options{CacheDir: testCacheDir(t), Out: out, Log: &shared.log}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	res, err := shared.suite.Run(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Figures {
		t.Logf("figure: %s", f)
	}
	t.Logf("%s took %.0fs", sc.Name, res.Seconds)
	for _, f := range res.Failures {
		t.Error(f)
	}
}

// TestScenarios runs every scenario as a subtest, in the order of
// Scenarios: `go test -run 'TestScenarios/wrr' ./vmtests` runs one.
func TestScenarios(t *testing.T) {
	for _, sc := range Scenarios {
		t.Run(sc.Name, func(t *testing.T) { runScenario(t, sc) })
	}
}
