// Package fsutil holds the file operations more than one lvsforge package
// needs.
package fsutil

import (
	"io"
	"io/fs"
	"os"
)

// CopyFile copies src to dst (created or truncated with mode).
func CopyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
