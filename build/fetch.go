package build

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cavaliergopher/grab/v3"
)

// Source is one file to fetch: the same bytes at one or more mirror URLs,
// pinned by sha256. A Source without a pin cannot be fetched into the cache;
// kernel.org sources get theirs from a signature-checked sha256sums.asc first.
type Source struct {
	// Name is shown in progress and errors, e.g. linux-6.1.192.tar.xz.
	Name string
	// URLs are tried in order on every round; a URL answering 404 is dropped.
	URLs   []string
	SHA256 string
}

// Progress is a snapshot of one download, reported while it runs.
type Progress struct {
	Name    string
	URL     string
	Bytes   int64
	Total   int64 // -1 when the server did not say
	Rate    float64
	ETA     time.Time
	Resumed bool
	Done    bool
	Attempt int
	Err     error
}

// Fetcher downloads Sources into a Cache. The zero value of every field but
// Cache is usable.
type Fetcher struct {
	Cache *Cache
	// Client is the grab client; nil means one with a sane timeout.
	Client *grab.Client
	// Rounds is how many times the whole mirror list is tried (default 4).
	Rounds int
	// Backoff is the pause after the first failed round, doubled after each
	// later one (default 1s).
	Backoff time.Duration
	// Parallel bounds concurrent downloads (default 3).
	Parallel int
	// Progress, when set, receives snapshots of each download about five
	// times a second and once at its end. It is called from several goroutines.
	Progress func(Progress)
	// IdleTimeout ends an attempt that received no byte for this long, so
	// a stalled connection is retried (and resumed) instead of blocking
	// forever (default 60s).
	IdleTimeout time.Duration
}

// ErrStalled reports a download attempt that received nothing for the
// Fetcher's IdleTimeout and was cancelled.
var ErrStalled = errors.New("no data received within the idle timeout")

func (f *Fetcher) idleTimeout() time.Duration {
	if f.IdleTimeout > 0 {
		return f.IdleTimeout
	}
	return 60 * time.Second
}

// await waits for resp to finish, calling tick about five times a second,
// and cancels the request when no byte arrived for the idle timeout.
func (f *Fetcher) await(resp *grab.Response, cancel context.CancelFunc, tick func()) error {
	idle := f.idleTimeout()
	every := min(200*time.Millisecond, idle/4)
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastAt, stalled := resp.BytesComplete(), time.Now(), false
	for {
		select {
		case <-t.C:
			if n := resp.BytesComplete(); n != last {
				last, lastAt = n, time.Now()
			} else if !stalled && time.Since(lastAt) >= idle {
				stalled = true
				cancel()
			}
			if tick != nil {
				tick()
			}
		case <-resp.Done:
			err := resp.Err()
			if stalled && err != nil {
				return fmt.Errorf("%w (%s, after %d bytes)", ErrStalled, idle, last)
			}
			return err
		}
	}
}

func (f *Fetcher) client() *grab.Client {
	if f.Client != nil {
		return f.Client
	}
	c := grab.NewClient()
	c.UserAgent = "lvsforge"
	c.HTTPClient = &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 60 * time.Second,
	}}
	return c
}

// Fetch downloads every source (at most Parallel at once) and returns their
// paths in the cache, in the order given. Sources already in the cache are
// not downloaded again. All sources are attempted; the error joins every failure.
func (f *Fetcher) Fetch(ctx context.Context, srcs ...Source) ([]string, error) {
	par := f.Parallel
	if par <= 0 {
		par = 3
	}
	paths := make([]string, len(srcs))
	errs := make([]error, len(srcs))
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	client := f.client()
	// The same bytes asked for twice (one patch in two sets) are fetched
	// once: two downloads into one .part file would interleave.
	first := map[string]int{}
	var dups [][2]int
	for i, s := range srcs {
		key := strings.ToLower(s.SHA256)
		if j, ok := first[key]; ok && ValidSHA256(key) {
			dups = append(dups, [2]int{i, j})
			continue
		}
		first[key] = i
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			paths[i], errs[i] = f.fetchOne(ctx, client, s)
		}()
	}
	wg.Wait()
	for _, d := range dups {
		paths[d[0]] = paths[d[1]]
	}
	return paths, errors.Join(errs...)
}

func (f *Fetcher) fetchOne(ctx context.Context, client *grab.Client, s Source) (string, error) {
	if !ValidSHA256(s.SHA256) {
		return "", fmt.Errorf("fetch %s: no valid sha256 pinned (got %q)", s.Name, s.SHA256)
	}
	sum := strings.ToLower(s.SHA256)
	if f.Cache.Has(sum) {
		return f.Cache.BlobPath(sum), nil
	}
	if len(s.URLs) == 0 {
		return "", fmt.Errorf("fetch %s: no URL", s.Name)
	}
	rounds := f.Rounds
	if rounds <= 0 {
		rounds = 4
	}
	backoff := f.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	// The partial file is named by the content it must end up as, so a
	// resume continues the same bytes whichever mirror served the start.
	part := filepath.Join(f.Cache.Dir, "downloads", sum+".part")
	// Another lvsforge may be fetching the same file into the same .part.
	unlock, err := lock(part + ".lock")
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", s.Name, err)
	}
	defer unlock()
	if f.Cache.Has(sum) {
		return f.Cache.BlobPath(sum), nil
	}
	dead := map[string]bool{}
	var errs []error
	attempt := 0
	for round := 0; round < rounds; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("fetch %s: %w", s.Name, ctx.Err())
			case <-time.After(backoff << (round - 1)):
			}
		}
		live := 0
		for _, u := range s.URLs {
			if dead[u] {
				continue
			}
			live++
			attempt++
			err := f.download(ctx, client, s.Name, u, part, attempt)
			if err == nil {
				p, cerr := f.Cache.commit(part, sum)
				if cerr == nil {
					return p, nil
				}
				// The mirror served wrong bytes; commit removed them, so the
				// next try starts from zero instead of resuming corruption.
				err = cerr
			}
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			var sc grab.StatusCodeError
			if errors.As(err, &sc) && (int(sc) == http.StatusNotFound || int(sc) == http.StatusGone) {
				dead[u] = true
			}
			if ctx.Err() != nil {
				return "", fmt.Errorf("fetch %s: %w", s.Name, errors.Join(errs...))
			}
		}
		if live == 0 {
			break
		}
	}
	return "", fmt.Errorf("fetch %s: %w", s.Name, errors.Join(errs...))
}

func (f *Fetcher) download(ctx context.Context, client *grab.Client, name, url, part string, attempt int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := grab.NewRequest(part, url)
	if err != nil {
		return err
	}
	req = req.WithContext(ctx)
	req.IgnoreRemoteTime = true
	resp := client.Do(req)
	report := func(done bool, err error) {
		if f.Progress == nil {
			return
		}
		f.Progress(Progress{
			Name: name, URL: url, Bytes: resp.BytesComplete(), Total: resp.Size(),
			Rate: resp.BytesPerSecond(), ETA: resp.ETA(), Resumed: resp.DidResume,
			Done: done, Attempt: attempt, Err: err,
		})
	}
	err = f.await(resp, cancel, func() { report(false, nil) })
	report(true, err)
	if err != nil && errors.Is(err, grab.ErrBadLength) {
		// The local part is longer than the remote file: it cannot be
		// a prefix of it, so start over next time.
		os.Remove(part)
	}
	return err
}
