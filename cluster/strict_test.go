package cluster

import (
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// hostile values: each must be refused in every string field, since every
// string reaches a shell script, a config file or a command line.
var hostile = []string{";reboot", "$(id)", "`id`", "\nnode evil", "a b'c", "|cat", "&&x", ">x", `"x`, "\\x", "*", "\r"}

// fullVariants are testdata/full.yaml and copies of it with the fields that
// exclude others (path/url, file/env) switched, and with the keepalived
// backend instead of heartbeat, and testdata/full-bgp.yaml (the bgp
// backend's fields), so every string field is set in one of them.
func fullVariants(t *testing.T) []string {
	b, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	full := string(b)
	alt := strings.NewReplacer(
		"    path: linux-6.1.192.tar.xz\n", "    url: https://mirror.example.org/linux-6.1.192.tar.xz\n",
		"{method: sha1, file: authkey}", "{method: sha1, env: LVS_AUTHKEY}",
	).Replace(full)
	// ha comes after the services and hosts; what only keepalived does
	// (gue tunnels with their checksum, its own ha fields) is here.
	keepalived := strings.Replace(full[:strings.Index(full, "\nha:\n")+1], "tunnel: {type: ipip}", "tunnel: {type: gue, port: 6080, checksum: csum}", 1) + `ha:
  backend: keepalived
  primary: d1
  autoFailback: true
  floatingGateway: 192.168.7.1/24
  floatingGateway6: 2001:db8:7::1/64
  keepalived:
    virtualRouterID: 51
    advertInt: 1
    unicast: true
    trackInterfaces: [eth1]
    trackScript: {command: /usr/local/bin/check-lvs --quiet, interval: 2, fall: 2, rise: 2, weight: -20}
    notify: {master: /usr/bin/logger -t lvs master, backup: /usr/bin/logger -t lvs backup, fault: /usr/bin/logger -t lvs fault, stop: /usr/bin/logger -t lvs stop, any: /usr/local/bin/vrrp-state}
    garpMasterRefresh: 60
  sync: {enabled: true, interface: eth1, syncID: 1}
`
	bgp, err := os.ReadFile("testdata/full-bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return []string{full, alt, keepalived, string(bgp)}
}

// stringPaths walks the node tree and returns every string scalar value node with its field path.
func stringPaths(n *yaml.Node, path string, out map[string]*yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode:
		stringPaths(n.Content[0], path, out)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			stringPaths(n.Content[i+1], join(path, n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			stringPaths(c, path+"["+strconv.Itoa(i)+"]", out)
		}
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			out[path] = n
		}
	}
}

// TestEveryStringFieldRefusesShellMetacharacters puts shell metacharacters
// and newlines into every string field of a spec that sets every field, and
// checks that each is refused with an error naming that field.
func TestEveryStringFieldRefusesShellMetacharacters(t *testing.T) {
	t.Setenv("LVS_AUTHKEY", "secret-for-tests")
	covered := map[string]bool{}
	for _, text := range fullVariants(t) {
		if _, err := Parse([]byte(text), "full.yaml", "testdata"); err != nil {
			t.Fatalf("the unmodified spec must be valid: %v", err)
		}
		var root yaml.Node
		if err := yaml.Unmarshal([]byte(text), &root); err != nil {
			t.Fatal(err)
		}
		fields := map[string]*yaml.Node{}
		stringPaths(&root, "", fields)
		for path, node := range fields {
			covered[regexp.MustCompile(`\[\d+\]`).ReplaceAllString(path, "[]")] = true
			orig := node.Value
			for _, bad := range hostile {
				for _, v := range []string{orig + bad, bad + orig} {
					node.Value, node.Style = v, yaml.DoubleQuotedStyle
					data, err := yaml.Marshal(&root)
					if err != nil {
						t.Fatal(err)
					}
					_, err = Parse(data, "full.yaml", "testdata")
					if err == nil {
						t.Errorf("%s = %q accepted", path, v)
					} else if !strings.Contains(err.Error(), " "+path+": ") && !strings.Contains(err.Error(), " "+parent(path)+": ") {
						t.Errorf("%s = %q: refused, but no error names the field:\n%v", path, v, err)
					}
				}
			}
			node.Value, node.Style = orig, 0
		}
	}
	// Every string field of the spec types must have been tried.
	for _, p := range typeStringPaths(reflect.TypeOf(Spec{}), "") {
		if !covered[p] {
			t.Errorf("string field %s is not set in testdata/full.yaml: add it so this test covers it", p)
		}
	}
}

// typeStringPaths lists the field paths of every string (or []string) in t.
func typeStringPaths(t reflect.Type, path string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeOf(Duration(0)) {
			return nil
		}
		var out []string
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			out = append(out, typeStringPaths(t.Field(i).Type, join(path, tag))...)
		}
		return out
	case reflect.Slice:
		return typeStringPaths(t.Elem(), path+"[]")
	case reflect.String:
		return []string{path}
	}
	return nil
}
