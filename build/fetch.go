package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what a fetched or imported file is, and so how large it may be.
type Kind string

// The kinds of file lvsforge fetches.
const (
	KindKernel    Kind = "kernel tarball"
	KindPatch     Kind = "patch"
	KindIpvsadm   Kind = "ipvsadm source"
	KindSignature Kind = "signature or checksum list"
)

// The most bytes a file of each kind may have. A download stops at the
// length its server announces, or at this cap when it announces none (or
// more than this); a local file larger than its cap is not imported. They
// leave room beyond the largest files of each kind (Debian's 6.1 kernel
// tar is 1.3 GiB uncompressed, ipvsadm 1.31's tarball 49 kB, a .tar.sign
// under 1 kB) while a server or a path sending endless bytes cannot fill
// the disk.
const (
	MaxKernelTarball int64 = 4 << 30
	MaxPatch         int64 = 256 << 20
	MaxIpvsadm       int64 = 16 << 20
	MaxSignature     int64 = 16 << 20
)

// MaxSize is the cap of kind k; a Source of no kind gets the largest.
func (k Kind) MaxSize() int64 {
	switch k {
	case KindPatch:
		return MaxPatch
	case KindIpvsadm:
		return MaxIpvsadm
	case KindSignature:
		return MaxSignature
	}
	return MaxKernelTarball
}

// String names the kind in messages: "file" when it is not set.
func (k Kind) String() string {
	if k == "" {
		return "file"
	}
	return string(k)
}

// ErrTooLarge reports a file larger than its server announced or than the
// cap of its kind.
var ErrTooLarge = errors.New("file too large")

// sizeString prints a byte count the way the caps are written.
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// capString names the cap of kind: "the 16 MiB an ipvsadm source may have".
func capString(kind Kind) string {
	article := "a"
	if strings.ContainsRune("aeiou", rune(kind.String()[0])) {
		article = "an"
	}
	return fmt.Sprintf("the %s %s %s may have", sizeString(kind.MaxSize()), article, kind)
}

// Source is one file to fetch: the same bytes at one or more mirror URLs,
// pinned by sha256. A Source without a pin cannot be fetched into the cache;
// kernel.org sources get theirs from a signature-checked sha256sums.asc first.
type Source struct {
	// Name is shown in progress and errors, e.g. linux-6.1.192.tar.xz.
	Name string
	// URLs are tried in order on every round; a URL that cannot serve the
	// file (a 4xx answer, the wrong bytes, too many) is dropped.
	URLs   []string
	SHA256 string
	// Kind bounds the size (see MaxSize).
	Kind Kind
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
	// Retrying is set on a failed attempt that another one follows; the
	// last failure of a fetch that gives up is the error Fetch returns.
	Retrying bool
}

// Fetcher downloads Sources into a Cache. The zero value of every field but
// Cache is usable.
type Fetcher struct {
	Cache *Cache
	// Client makes the requests; nil means one with sane timeouts.
	Client *http.Client
	// Rounds is how many times the whole mirror list is tried (default 4).
	// Only what may succeed later is tried again: a connection that
	// failed or broke, a stall, a 5xx answer.
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

// HTTPStatusError is a server's answer other than the file.
type HTTPStatusError int

func (e HTTPStatusError) Error() string {
	return fmt.Sprintf("server answered %d %s", int(e), http.StatusText(int(e)))
}

// localError is a failure on this machine (the disk is full): no mirror
// and no retry can help.
type localError struct{ err error }

func (e localError) Error() string { return e.err.Error() }
func (e localError) Unwrap() error { return e.err }

// errBadResume reports a server that answered a resume with other bytes
// than the rest of the file: the next attempt starts over.
var errBadResume = errors.New("the server cannot resume the download")

// retryable says whether an attempt that failed with err may succeed if
// made again: not when the server refused the request or sent the wrong
// or too many bytes, nor when this machine failed.
func retryable(err error) bool {
	var status HTTPStatusError
	var local localError
	switch {
	case errors.As(err, &local), errors.Is(err, ErrChecksum), errors.Is(err, ErrTooLarge):
		return false
	case errors.As(err, &status):
		return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
	}
	return true
}

// attemptsError is what a user is told of a URL that failed n times: the
// last error, once, with the count.
func attemptsError(n int, err error) error {
	if n <= 1 {
		return err
	}
	return fmt.Errorf("%d attempts failed, the last: %w", n, err)
}

func (f *Fetcher) idleTimeout() time.Duration {
	if f.IdleTimeout > 0 {
		return f.IdleTimeout
	}
	return 60 * time.Second
}

func (f *Fetcher) rounds() (int, time.Duration) {
	rounds, backoff := f.Rounds, f.Backoff
	if rounds <= 0 {
		rounds = 4
	}
	if backoff <= 0 {
		backoff = time.Second
	}
	return rounds, backoff
}

// pause waits before round (none before the first) and reports whether the
// context ended first.
func pause(ctx context.Context, backoff time.Duration, round int) bool {
	if round == 0 {
		return false
	}
	select {
	case <-ctx.Done():
		return true
	case <-time.After(backoff << (round - 1)):
		return false
	}
}

// defaultClient serves every Fetcher without a Client: one transport, so
// that attempts and files reuse their connections.
var defaultClient = func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = 60 * time.Second
	return &http.Client{Transport: t}
}()

func (f *Fetcher) client() *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return defaultClient
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
			paths[i], errs[i] = f.fetchOne(ctx, s)
		}()
	}
	wg.Wait()
	for _, d := range dups {
		paths[d[0]] = paths[d[1]]
	}
	return paths, errors.Join(errs...)
}

// urlState is what one URL of a Source has given so far.
type urlState struct {
	attempts int
	err      error
	dead     bool // it cannot serve the file: not asked again
}

func (f *Fetcher) fetchOne(ctx context.Context, s Source) (string, error) {
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
	rounds, backoff := f.rounds()
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
	// Resumes happen between the attempts of this fetch; a fetch that
	// gives up leaves nothing behind (the disk may be what is full).
	done := false
	defer func() {
		if !done {
			os.Remove(part)
		}
	}()
	state := map[string]*urlState{}
	for _, u := range s.URLs {
		state[u] = &urlState{}
	}
	live := func(urls []string) bool {
		for _, u := range urls {
			if !state[u].dead {
				return true
			}
		}
		return false
	}
	// owner is the URL whose bytes the .part holds: a mirror that cannot
	// serve the file throws away its own bytes, never another's.
	owner := ""
	size := func() int64 {
		if st, err := os.Stat(part); err == nil {
			return st.Size()
		}
		return 0
	}
	attempt := 0
	for round := 0; round < rounds && live(s.URLs); round++ {
		if pause(ctx, backoff, round) {
			return "", fmt.Errorf("fetch %s: %w", s.Name, ctx.Err())
		}
		for i, u := range s.URLs {
			st := state[u]
			if st.dead {
				continue
			}
			attempt++
			st.attempts++
			before := size()
			p, resumed, err := f.attempt(ctx, s, u, part, sum, attempt)
			if after := size(); after != before || (after > 0 && resumed) {
				owner = u
			}
			if err == nil {
				done = true
				return p, nil
			}
			st.err = err
			// A mismatch after a resume may be an earlier attempt's bytes:
			// the next attempt starts from zero (the bytes are gone).
			st.dead = !retryable(err) && !(resumed && errors.Is(err, ErrChecksum))
			if st.dead && owner == u {
				// Bytes from a URL that cannot serve the file are no
				// start for another mirror.
				os.Remove(part)
				owner = ""
			}
			var local localError
			if errors.As(err, &local) || ctx.Err() != nil {
				f.report(Progress{Name: s.Name, URL: u, Done: true, Attempt: attempt, Err: err})
				return "", fmt.Errorf("fetch %s from %s: %w", s.Name, u, err)
			}
			retrying := live(s.URLs[i+1:]) || (round+1 < rounds && live(s.URLs))
			f.report(Progress{Name: s.Name, URL: u, Done: true, Attempt: attempt, Err: err, Retrying: retrying})
		}
	}
	var errs []error
	for _, u := range s.URLs {
		if st := state[u]; st.attempts > 0 {
			errs = append(errs, fmt.Errorf("%s: %w", u, attemptsError(st.attempts, st.err)))
		}
	}
	return "", fmt.Errorf("fetch %s: %w", s.Name, errors.Join(errs...))
}

func (f *Fetcher) report(p Progress) {
	if f.Progress != nil {
		f.Progress(p)
	}
}

// attempt downloads url into part, resuming what part holds, and commits
// it to the cache if it hashes to sum. resumed says whether the bytes
// checked include an earlier attempt's.
func (f *Fetcher) attempt(ctx context.Context, s Source, url, part, sum string, attempt int) (path string, resumed bool, err error) {
	out, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", false, localError{err}
	}
	defer func() {
		if out != nil {
			out.Close()
		}
	}()
	have, err := out.Seek(0, io.SeekEnd)
	if err != nil {
		return "", false, localError{err}
	}
	restart := func() error {
		if err := out.Truncate(0); err != nil {
			return err
		}
		_, err := out.Seek(0, io.SeekStart)
		return err
	}
	if have > s.Kind.MaxSize() {
		// Left by a process that died: it cannot be the start of the file.
		if err := restart(); err != nil {
			return "", false, localError{err}
		}
		have = 0
	}
	start := time.Now()
	progress := func(done bool, got, from, total int64) {
		if f.Progress == nil {
			return
		}
		p := Progress{Name: s.Name, URL: url, Bytes: got, Total: total, Resumed: from > 0, Done: done, Attempt: attempt}
		if secs := time.Since(start).Seconds(); secs > 0 {
			p.Rate = float64(got-from) / secs
		}
		if p.Rate > 0 && total > 0 && !done {
			p.ETA = time.Now().Add(time.Duration(float64(total-got) / p.Rate * float64(time.Second)))
		}
		f.Progress(p)
	}
	from, got, total, err := f.get(ctx, url, s.Kind, have, out, restart, progress)
	if err == nil {
		// A write error may only show when the file is closed.
		err = out.Close()
		out = nil
		if err != nil {
			err = localError{err}
		}
	}
	if err != nil {
		return "", from > 0, err
	}
	p, err := f.Cache.commit(part, sum)
	if err != nil {
		if !errors.Is(err, ErrChecksum) {
			err = localError{err}
		}
		return "", from > 0, err
	}
	progress(true, got, from, total)
	return p, from > 0, nil
}

// get makes one GET of url and appends the body to w, which holds have
// bytes of the file already: it asks for the rest and, when the server
// sends the whole file instead, calls restart and writes it from the
// start. It reads no more than the length the server announced, or the
// cap of kind when it announced none, and calls progress about five times
// a second with the bytes of the file so far. It returns where this
// attempt started (have, or 0), how many bytes the file then had, and the
// whole size if the server said it (-1 otherwise).
func (f *Fetcher) get(ctx context.Context, rawURL string, kind Kind, have int64, w io.Writer, restart func() error,
	progress func(done bool, got, from, total int64)) (from, got, total int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return 0, 0, -1, err
	}
	req.Header.Set("User-Agent", "lvsforge")
	// The bytes as stored: Go would otherwise ask for gzip and undo a
	// server's Content-Encoding, and the sha256 pins the stored bytes.
	req.Header.Set("Accept-Encoding", "identity")
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
	}
	resp, err := f.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named by the caller
		}
		return 0, 0, -1, err
	}
	defer resp.Body.Close()
	from, total, err = span(resp, have)
	if errors.Is(err, errBadResume) {
		if rerr := restart(); rerr != nil {
			return 0, 0, -1, localError{rerr}
		}
	}
	if err != nil {
		return 0, 0, -1, err
	}
	if from < have {
		if err := restart(); err != nil {
			return 0, 0, -1, localError{err}
		}
	}
	max := kind.MaxSize()
	if total > max {
		return from, from, total, fmt.Errorf("%w: the server announces %d bytes, more than %s", ErrTooLarge, total, capString(kind))
	}
	limit := max
	if total >= 0 {
		limit = total
	}
	var n atomic.Int64
	n.Store(from)
	stalled := watch(ctx, cancel, &n, f.idleTimeout(), func() { progress(false, n.Load(), from, total) })
	buf := make([]byte, 256<<10)
	for {
		nr, rerr := resp.Body.Read(buf)
		if nr > 0 {
			if n.Load()+int64(nr) > limit {
				stalled()
				if total >= 0 {
					return from, n.Load(), total, fmt.Errorf("%w: the server sent more than the %d bytes it announced", ErrTooLarge, total)
				}
				return from, n.Load(), total, fmt.Errorf("%w: the server sent more than %s (it announced no length)", ErrTooLarge, capString(kind))
			}
			if _, err := w.Write(buf[:nr]); err != nil {
				stalled()
				return from, n.Load(), total, localError{err}
			}
			n.Add(int64(nr))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if stalled() {
				return from, n.Load(), total, fmt.Errorf("%w (%s, after %d bytes)", ErrStalled, f.idleTimeout(), n.Load())
			}
			return from, n.Load(), total, rerr
		}
	}
	stalled()
	if total >= 0 && n.Load() < total {
		return from, n.Load(), total, fmt.Errorf("%w: %d of %d bytes", io.ErrUnexpectedEOF, n.Load(), total)
	}
	return from, n.Load(), n.Load(), nil
}

// span reads where a response's body starts in the file (0, or have when
// the server continues a resume) and the whole file's size (-1 when not
// said), and refuses an answer that is not the file or not its rest.
func span(resp *http.Response, have int64) (from, total int64, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		return 0, resp.ContentLength, nil
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		first, last, size, ok := parseContentRange(cr)
		if !ok || first != have || (size >= 0 && last+1 != size) ||
			(resp.ContentLength >= 0 && resp.ContentLength != last-first+1) {
			return 0, -1, fmt.Errorf("%w at byte %d: it answered with range %q and %d bytes", errBadResume, have, cr, resp.ContentLength)
		}
		return have, size, nil
	case http.StatusRequestedRangeNotSatisfiable:
		if have > 0 {
			return 0, -1, fmt.Errorf("%w: it has no byte %d", errBadResume, have)
		}
	}
	return 0, -1, HTTPStatusError(resp.StatusCode)
}

// parseContentRange reads "bytes FIRST-LAST/SIZE", SIZE being "*" (-1)
// when the server does not know it.
func parseContentRange(s string) (first, last, size int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	a, b, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	size = -1
	if sz != "*" {
		size, err3 = strconv.ParseInt(sz, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

// watch calls tick about five times a second until the returned stop is
// called, and cancels the request when the count n stayed the same for
// idle. stop reports whether that happened.
func watch(ctx context.Context, cancel context.CancelFunc, n *atomic.Int64, idle time.Duration, tick func()) (stop func() bool) {
	every := min(200*time.Millisecond, idle/4)
	done := make(chan struct{})
	finished := make(chan struct{})
	var stalled atomic.Bool
	go func() {
		defer close(finished)
		t := time.NewTicker(every)
		defer t.Stop()
		last, lastAt := n.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if v := n.Load(); v != last {
					last, lastAt = v, time.Now()
				} else if time.Since(lastAt) >= idle {
					stalled.Store(true)
					cancel()
					return
				}
				tick()
			}
		}
	}()
	var once sync.Once
	return func() bool {
		once.Do(func() {
			close(done)
			<-finished
		})
		return stalled.Load()
	}
}
