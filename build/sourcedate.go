package build

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// sourceDate picks the time a kernel is stamped with (KBUILD_BUILD_TIMESTAMP,
// the modules tarball's mtimes) from the source tarball's own headers: the
// top-level Makefile's mtime, else the newest entry's. It is read at
// extraction, before any patch runs: GNU patch gives the files it changes
// the current time, so reading the tree afterwards would make a patch to
// the Makefile change the kernel on every extraction.
type sourceDate struct {
	makefile, newest time.Time
}

func (d *sourceDate) observe(h *tar.Header) {
	if h.ModTime.After(d.newest) {
		d.newest = h.ModTime
	}
	if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
		return
	}
	name := strings.TrimPrefix(path.Clean(h.Name), "./")
	if d.makefile.IsZero() && (name == "Makefile" || path.Base(name) == "Makefile" && strings.Count(name, "/") == 1) {
		d.makefile = h.ModTime
	}
}

// time is the date to stamp with, in whole seconds (what the kernel's
// timestamp format shows).
func (d *sourceDate) time() time.Time {
	t := d.makefile
	if t.IsZero() {
		t = d.newest
	}
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return t.Truncate(time.Second).UTC()
}

func sourceDatePath(srcRoot string) string { return srcRoot + ".date" }

func writeSourceDate(srcRoot string, t time.Time) error {
	if err := os.WriteFile(sourceDatePath(srcRoot), []byte(strconv.FormatInt(t.Unix(), 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("record source date: %w", err)
	}
	return nil
}

// sourceDate returns the recorded date of the tree at srcRoot. A tree
// extracted by an lvsforge that did not record it gets it from the tarball
// now (one decompression, once).
func (b *Builder) sourceDate(ctx context.Context, in KernelInputs, srcRoot string) (time.Time, error) {
	data, err := os.ReadFile(sourceDatePath(srcRoot))
	if err == nil {
		if n, perr := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); perr == nil {
			return time.Unix(n, 0).UTC(), nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return time.Time{}, fmt.Errorf("read source date: %w", err)
	}
	t, err := scanSourceDate(ctx, in.Tarball, b.SystemXZ)
	if err != nil {
		return time.Time{}, err
	}
	return t, writeSourceDate(srcRoot, t)
}

// scanSourceDate reads every header of a tarball to find its sourceDate.
func scanSourceDate(ctx context.Context, tarball string, systemXZ bool) (time.Time, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return time.Time{}, fmt.Errorf("read source date: %w", err)
	}
	defer f.Close()
	rc, err := Decompress(ctx, f, systemXZ)
	if err != nil {
		return time.Time{}, fmt.Errorf("read source date of %s: %w", tarball, err)
	}
	defer rc.Close()
	var d sourceDate
	tr := tar.NewReader(bufio.NewReaderSize(rc, 1<<20))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return time.Time{}, fmt.Errorf("read source date of %s: %w", tarball, err)
		}
		d.observe(h)
	}
	return d.time(), nil
}

// kbuildTimestamp formats t the way kbuild's own timestamp looks.
func kbuildTimestamp(t time.Time) string {
	return t.UTC().Format("Mon Jan _2 15:04:05 UTC 2006")
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// byteProgress is "45.2/130.5 MiB (35%), ETA 12s" for read of size after elapsed.
func byteProgress(read, size int64, elapsed time.Duration) string {
	if size <= 0 {
		return mib(read)
	}
	s := fmt.Sprintf("%.1f/%s (%d%%)", float64(read)/(1<<20), mib(size), read*100/size)
	if read > 0 && elapsed > time.Second {
		eta := time.Duration(float64(elapsed) * float64(size-read) / float64(read))
		s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
	}
	return s
}
