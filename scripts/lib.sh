# Shared by scripts/test and scripts/run-example: make sure Go and the host
# tools are there. Sourced, not run.

GO_VERSION=1.26.8

# ensure_go puts a Go >= $GO_VERSION on PATH. Debian's own golang is too old,
# so when none is installed it fetches the official toolchain from the Go
# module proxy (the same zip `GOTOOLCHAIN=go1.26.8` would fetch).
ensure_go() {
	if command -v go >/dev/null 2>&1 && go_ok "$(go env GOVERSION 2>/dev/null)"; then
		return 0
	fi
	if [ -x /usr/local/go/bin/go ] && go_ok "$(/usr/local/go/bin/go env GOVERSION)"; then
		PATH=/usr/local/go/bin:$PATH
		return 0
	fi
	local cache="${XDG_CACHE_HOME:-$HOME/.cache}/lvsforge/toolchain"
	local dir="$cache/golang.org/toolchain@v0.0.1-go$GO_VERSION.linux-amd64"
	if [ ! -x "$dir/bin/go" ]; then
		echo "lvsforge: fetching Go $GO_VERSION from the Go module proxy into $cache" >&2
		mkdir -p "$cache"
		local zip="$cache/go$GO_VERSION.zip"
		curl -fsSL -o "$zip.part" "${GOPROXY_BASE:-https://proxy.golang.org}/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-amd64.zip"
		mv "$zip.part" "$zip"
		(cd "$cache" && python3 -m zipfile -e "$zip" .)
		chmod +x "$dir"/bin/* "$dir"/pkg/tool/*/* 2>/dev/null || true
		rm -f "$zip"
	fi
	PATH=$dir/bin:$PATH
	export GOTOOLCHAIN=local
}

go_ok() {
	# go_ok goX.Y.Z: true when X.Y >= 1.26
	local v=${1#go}
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	[ -n "$major" ] && [ "$major" -gt 1 ] 2>/dev/null && return 0
	[ "$major" = 1 ] && [ "${minor:-0}" -ge 26 ] 2>/dev/null
}

# ensure_tools installs every host tool `lvsforge doctor` lists, as root;
# otherwise it prints the exact apt-get command and goes on (the tests that
# need a missing tool then skip, except under CI=true where they fail).
ensure_tools() {
	if [ "$(id -u)" = 0 ]; then
		if ! command -v curl >/dev/null || ! command -v python3 >/dev/null; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl python3
		fi
		go run ./cmd/lvsforge doctor --install
	else
		go run ./cmd/lvsforge doctor || echo "lvsforge: not root: run the command above, then this again" >&2
	fi
}
