// Package templates holds the text/template files lvsforge renders onto hosts
// (heartbeat, ldirectord, keepalived, ipvsadm rules, init scripts, systemd
// units, sysctl drop-ins, GRUB entries), embedded in the binary. Templates
// only lay out values the roles package prepared and the cluster package
// validated; they make no decisions and never quote.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.tmpl
var files embed.FS

var all = template.Must(template.New("").Funcs(template.FuncMap{
	"join": strings.Join,
}).Option("missingkey=error").ParseFS(files, "*.tmpl"))

// Render executes the named template (file name under templates/) with data.
func Render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := all.ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}
