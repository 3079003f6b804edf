package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
)

// Flags shared by fetch and build.
var (
	cacheDirFlag = &cli.StringFlag{Name: "cache-dir", Usage: "cache and artifacts `DIR` (default $XDG_CACHE_HOME/lvsforge)"}
	keyringFlag  = &cli.StringFlag{
		Name:  "keyring",
		Usage: "OpenPGP keyring `FILE` that verifies kernel.org's sha256sums.asc (default $XDG_CONFIG_HOME/lvsforge/kernel.org-keyring.asc if present, else the kernel.org autosigner key lvsforge ships)",
	}
	signerFlag = &cli.StringFlag{
		Name:  "signer-fingerprint",
		Value: build.KernelOrgAutosignerFingerprint,
		Usage: "accept sha256sums.asc only when signed by this key `FINGERPRINT` (\"any\": any key of the keyring)",
	}
	ipvsadmFileFlag = &cli.StringFlag{Name: "ipvsadm-tarball", Usage: "local copy of the ipvsadm 1.31 source `FILE` (checked against the pinned sha256)"}
	buildJSONFlag   = &cli.BoolFlag{Name: "json", Usage: "print a machine-readable summary on stdout"}
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:      "fetch",
			Usage:     "download and verify the kernel source, patches and ipvsadm source into the cache",
			ArgsUsage: " ",
			Flags:     []cli.Flag{specFlag, cacheDirFlag, keyringFlag, signerFlag, ipvsadmFileFlag, buildJSONFlag},
			Action: func(c *cli.Context) error {
				s, f, opt, err := a.fetchSetup(c)
				if err != nil {
					return err
				}
				got, err := f.FetchSpec(c.Context, s, opt)
				if err != nil {
					return err
				}
				items := got.Items()
				if c.Bool("json") {
					return writeBuildJSON(a.Stdout, map[string]any{"cacheDir": f.Cache.Dir, "files": items})
				}
				for _, it := range items {
					fmt.Fprintf(a.Stdout, "verified %s sha256:%s %s\n", it.Name, it.SHA256, it.Path)
					if it.SignedBy != "" {
						fmt.Fprintf(a.Stdout, "  .tar.sign verified: signed by %s\n", it.SignedBy)
					}
				}
				return nil
			},
		}
	})
}

func writeBuildJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fetchSetup is how fetch, build and vmtest start: the spec, the cache
// with download progress on stderr, and the keyring.
func (a *App) fetchSetup(c *cli.Context) (*cluster.Spec, *build.Fetcher, build.FetchOptions, error) {
	s, err := a.loadSpec(c)
	if err != nil {
		return nil, nil, build.FetchOptions{}, err
	}
	f, err := a.fetcher(c)
	if err != nil {
		return nil, nil, build.FetchOptions{}, err
	}
	opt, err := fetchOptions(c)
	return s, f, opt, err
}

// fetcher opens the cache and wires download progress to stderr.
func (a *App) fetcher(c *cli.Context) (*build.Fetcher, error) {
	dir := c.String("cache-dir")
	if dir == "" {
		var err error
		if dir, err = build.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	cache, err := build.NewCache(dir)
	if err != nil {
		return nil, err
	}
	p := newFetchProgress(a.Stderr)
	return &build.Fetcher{Cache: cache, Progress: p.download, Backoff: fetchBackoff}, nil
}

// fetchBackoff is the Fetcher's pause between rounds (0: build's default);
// tests shorten it.
var fetchBackoff time.Duration

// fetchOptions loads the keyring (see build.NewVerifier); tarball and
// distro sources need none.
func fetchOptions(c *cli.Context) (build.FetchOptions, error) {
	v, err := build.NewVerifier(c.String("keyring"), c.String("signer-fingerprint"))
	return build.FetchOptions{IpvsadmFile: c.String("ipvsadm-tarball"), Verifier: v}, err
}

// progress renders downloads and build steps: one rewritten line on a
// terminal, plain log lines (at most one per download, and per progress
// step, every 5 s) otherwise.
type fetchProgress struct {
	mu   sync.Mutex
	w    io.Writer
	tty  bool
	last map[string]time.Time
	open bool // a \r line is on screen
}

// progressSteps are the build steps whose messages report progress of one
// long step (extraction, compilation) rather than start a new one.
var progressSteps = map[string]bool{"extract": true, "compile": true}

func newFetchProgress(w io.Writer) *fetchProgress {
	p := &fetchProgress{w: w, last: map[string]time.Time{}}
	if f, ok := w.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.tty = true
		}
	}
	return p
}

func (p *fetchProgress) line(done bool, msg string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", msg)
		p.open = !done
		if done {
			fmt.Fprintln(p.w)
		}
		return
	}
	fmt.Fprintln(p.w, msg)
}

func (p *fetchProgress) download(pr build.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty && !pr.Done && time.Since(p.last[pr.Name]) < 5*time.Second {
		return
	}
	p.last[pr.Name] = time.Now()
	size := "?"
	if pr.Total > 0 {
		size = mibString(pr.Total)
	}
	msg := fmt.Sprintf("fetch %s: %s/%s %s/s", pr.Name, mibString(pr.Bytes), size, mibString(int64(pr.Rate)))
	if pr.Total > 0 && !pr.Done && !pr.ETA.IsZero() {
		msg += fmt.Sprintf(" ETA %s", time.Until(pr.ETA).Round(time.Second))
	}
	if pr.Resumed {
		msg += " (resumed)"
	}
	switch {
	case pr.Done && pr.Err == nil:
		msg = fmt.Sprintf("fetch %s: %s downloaded", pr.Name, mibString(pr.Bytes))
	case pr.Retrying:
		// The error of the last attempt is what fetch reports, once, with
		// the count; a terminal shows each retry until the next report
		// replaces it.
		if p.tty {
			p.line(false, fmt.Sprintf("fetch %s: attempt %d from %s failed, retrying: %v", pr.Name, pr.Attempt, pr.URL, pr.Err))
		}
		return
	case pr.Err != nil:
		// The fetch gave up: its error follows on a clean line.
		if p.open {
			fmt.Fprint(p.w, "\r\x1b[K")
			p.open = false
		}
		return
	}
	p.line(pr.Done, msg)
}

func (p *fetchProgress) step(step, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !progressSteps[step] {
		// A new step: the next progress message of any step is its first.
		for s := range progressSteps {
			delete(p.last, "step "+s)
		}
	} else if !p.tty {
		key := "step " + step
		if time.Since(p.last[key]) < 5*time.Second {
			return
		}
		p.last[key] = time.Now()
	}
	p.line(!progressSteps[step], msg)
}

func mibString(n int64) string {
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
