#!/usr/bin/env bash
# Build, run and test a Caddy that contains caddy-stepup.
#
#   ./xcaddy.sh build   build ./caddy with xcaddy (pinned in tools/go.mod)
#   ./xcaddy.sh run     build if needed, then run the demo (Caddyfile.example)
#   ./xcaddy.sh test    every check and test: gofmt, vet, staticcheck, and
#                       go test -race ./... against a real redis-server and a
#                       real Caddy (installs Debian's redis-server if missing),
#                       each Go benchmark once, fuzzing (FUZZTIME, default
#                       4s per target), bench/run.sh --quick
#   ./xcaddy.sh lint    gofmt, go vet and staticcheck only
#   ./xcaddy.sh fuzz    every fuzz target for FUZZTIME (default 8s) each
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
MODULE=github.com/caddy-stepup/caddy-stepup
CADDY_VERSION=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
# The Go modules that are linted and tested: the plugin, its end-to-end
# tests and its benchmark suite. e2e/ and bench/ are modules of their own
# (with a replace of the plugin by this checkout) so that chromedp and
# the benchmark tools never enter the plugin's go.mod or an xcaddy build.
# tools/ only pins the tools.
MODULES=(. e2e bench)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'xcaddy.sh: %s\n' "$*" >&2; exit 1; }

# needs_build: ./caddy is missing or older than any Go source or module file.
needs_build() {
	[ -x "$ROOT/caddy" ] || return 0
	[ -n "$(find "$ROOT" \( -path "$ROOT/.git" -o -path "$ROOT/.cache" -o -path "$ROOT/bench/out" \) -prune -o \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.html' -o -name '*.js' -o -name '*.css' -o -name '*.json' \) -newer "$ROOT/caddy" -print -quit)" ]
}

build() {
	say "building ./caddy (Caddy $CADDY_VERSION + $MODULE) with xcaddy"
	# xcaddy runs from the tools module, where it is pinned. The plugin is
	# this checkout (--replace), so the build uses this go.mod's versions.
	# The placeholder version keeps `go get` from asking the module proxy
	# for a published release of the plugin.
	(cd "$ROOT/tools" && go tool xcaddy build "$CADDY_VERSION" \
		--output "$ROOT/caddy" \
		--with "$MODULE@v0.0.0-00010101000000-000000000000" \
		--replace "$MODULE=$ROOT")
	"$ROOT/caddy" list-modules | grep -x 'http.handlers.stepup' >/dev/null || die "built ./caddy lacks http.handlers.stepup"
	say "built $ROOT/caddy"
}

# ensure_packages installs what the tests need from Debian's packages:
# redis-server (store, Sentinel and Cluster tests), chromium (the page's
# browser tests), npm (axe-core for the accessibility check), and fonts
# for the Hindi and Arabic screenshots. It fails loudly when it cannot.
ensure_packages() {
	local missing=()
	command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
	command -v chromium >/dev/null 2>&1 || missing+=(chromium)
	command -v npm >/dev/null 2>&1 || missing+=(npm)
	[ -d /usr/share/fonts/truetype/noto ] || missing+=(fonts-noto-ui-core)
	[ ${#missing[@]} -eq 0 ] && return
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing Debian packages: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
			{ apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } ||
			die "could not install ${missing[*]} with apt-get"
	fi
	command -v redis-server >/dev/null 2>&1 ||
		die "redis-server is required by the tests and could not be installed (run as root on Debian, or install redis-server)"
	command -v chromium >/dev/null 2>&1 ||
		die "chromium is required by the browser tests and could not be installed (run as root on Debian, or install chromium)"
	command -v npm >/dev/null 2>&1 ||
		die "npm is required by the accessibility test and could not be installed"
}

lint() {
	say "gofmt"
	local unformatted m
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	[ -z "$unformatted" ] || die "gofmt would change: $unformatted"
	mkdir -p "$ROOT/.bin"
	(cd "$ROOT/tools" && go build -o "$ROOT/.bin/staticcheck" honnef.co/go/tools/cmd/staticcheck)
	for m in "${MODULES[@]}"; do
		say "go vet and staticcheck (module ${m#./})"
		(cd "$ROOT/$m" && go vet ./... && "$ROOT/.bin/staticcheck" ./...)
	done
}

# fuzz runs every fuzz target for a bounded time (FUZZTIME, default 8s;
# 4s in ./xcaddy.sh test), on top of its committed seed corpus
# (testdata/fuzz), which go test already replays as unit tests. Each
# package with fuzz targets is built once, instrumented for fuzzing (go
# test -c -fuzz), and that binary fuzzes its targets one after another
# as go test -fuzz would: in the package's directory, with go test's
# corpus cache.
fuzz() {
	local t="${FUZZTIME:-8s}" m pkgs pkg dir targets target out try bins bin cache n=0
	out=$(mktemp)
	bins=$(mktemp -d)
	cache="$(go env GOCACHE)/fuzz"
	for m in "${MODULES[@]}"; do
		pkgs=$(with_func "$m" Fuzz) || die "listing the packages of module $m"
		[ -n "$pkgs" ] || continue
		while read -r pkg dir; do
			bin="$bins/$(echo "$pkg" | tr / _).test"
			(cd "$ROOT/$m" && go test -c -fuzz . -o "$bin" "$pkg") || die "building the fuzz targets of $pkg"
			targets=$(cd "$dir" && "$bin" -test.list '^Fuzz') || die "listing the fuzz targets of $pkg: $targets"
			targets=$(grep '^Fuzz' <<<"$targets" || true)
			[ -n "$targets" ] || die "$pkg declares a func Fuzz... in its tests, but its test binary lists no fuzz target"
			for target in $targets; do
				n=$((n + 1))
				for try in 1 2; do
					say "fuzz $pkg $target ($t)"
					if (cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^${target}\$" -test.fuzztime "$t" \
						-test.fuzzcachedir "$cache/$pkg" -test.paniconexit0 -test.timeout 10m) >"$out" 2>&1; then
						break
					fi
					tail -n 30 "$out" >&2
					# A failing input is written under testdata/fuzz: a real
					# failure. Without one, the fuzzing process itself failed
					# (a worker starved on a loaded machine): once more.
					if [ -n "$(git -C "$dir" status --porcelain -- "testdata/fuzz/$target" 2>/dev/null)" ] || [ "$try" = 2 ]; then
						rm -rf "$out" "$bins"
						die "fuzz target $target in $pkg failed (a failing input is under $dir/testdata/fuzz/$target when one was found)"
					fi
					say "fuzzing $target failed without a failing input: trying once more"
				done
			done
		done <<<"$pkgs"
	done
	rm -rf "$out" "$bins"
	[ "$n" -gt 0 ] || die "no fuzz target found"
	say "fuzzed $n targets"
}

# gotest runs go test -race on module $1 (further arguments go to go
# test), the end-to-end tests against ./caddy.
gotest() {
	local m=$1
	shift
	(cd "$ROOT/$m" && STEPUP_CADDY_BIN="$ROOT/caddy" go test -race -count=1 -timeout 40m "$@" ./...)
}

# with_func lists the packages of module $1 whose test files declare a
# func whose name starts with $2 (Benchmark, Fuzz), as "IMPORTPATH DIR"
# lines; it fails when go list does.
with_func() {
	local list pkg dir files
	list=$(cd "$ROOT/$1" && go list -f '{{.ImportPath}} {{.Dir}} {{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}' ./...) || return 1
	while read -r pkg dir files; do
		if [ -n "$files" ] && (cd "$dir" && grep -q "^func $2" $files); then
			echo "$pkg $dir"
		fi
	done <<<"$list"
}

# benchmarks runs every Go benchmark once (-benchtime 1x), in the
# packages that have any. Benchmarks report, they do not gate: CI only
# checks that each one runs.
benchmarks() {
	local m pkgs out
	out=$(mktemp)
	for m in "${MODULES[@]}"; do
		pkgs=$(with_func "$m" Benchmark) || return 1
		[ -n "$pkgs" ] || continue
		if ! (cd "$ROOT/$m" && go test -run '^$' -bench . -benchtime 1x $(cut -d' ' -f1 <<<"$pkgs")) >"$out" 2>&1; then
			grep -E -B2 -A8 '^(--- FAIL|FAIL|panic)' "$out" | tail -n 60 >&2
			rm -f "$out"
			echo "a Go benchmark failed" >&2
			return 1
		fi
	done
	rm -f "$out"
}

# kill_tree ends process $1 and its descendants, by id.
kill_tree() {
	local child
	for child in $(pgrep -P "$1" 2>/dev/null); do
		kill_tree "$child"
	done
	kill "$1" 2>/dev/null || true
}

run_tests() {
	ensure_packages
	lint
	# The plugin's own packages need no ./caddy: their tests, then each
	# Go benchmark once, run while xcaddy builds ./caddy and beside the
	# end-to-end tests, which mostly wait on Caddy, Redis and Chromium
	# processes (hence -parallel 6 there). Their output follows.
	local unit rc=0 pid
	unit=$(mktemp)
	say "go test -race ./... in the plugin's module, then every Go benchmark once (-benchtime 1x), in the background"
	{ gotest . && benchmarks; } >"$unit" 2>&1 &
	pid=$!
	trap 'kill_tree "$pid"; rm -f "$unit"' EXIT
	build
	say "go test -race ./... in modules e2e and bench (real redis-server, real Caddy at ./caddy, Chromium)"
	gotest e2e -parallel 6 || rc=$?
	gotest bench || rc=$?
	wait "$pid" || rc=$?
	trap - EXIT
	say "go test -race ./... in the plugin's module (real redis-server) and the Go benchmarks:"
	cat "$unit"
	rm -f "$unit"
	[ "$rc" = 0 ] || die "go test failed"
	FUZZTIME="${FUZZTIME:-4s}" fuzz
	say "bench/run.sh --quick (the wrk suite end to end; report in bench/out/)"
	"$ROOT/bench/run.sh" --quick
	say "all tests passed"
}

case "${1:-}" in
build)
	build
	;;
run)
	if needs_build; then build; fi
	if [ -z "${STEPUP_SECRET:-}" ]; then
		STEPUP_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
		export STEPUP_SECRET
		say "STEPUP_SECRET was not set: using a random one for this run"
	fi
	# Caddyfile.example reads its ports and its page root from the
	# environment; the root is made absolute so that ./caddy works from
	# any directory.
	export STEPUP_DEMO_ROOT="${STEPUP_DEMO_ROOT:-$ROOT/demo}"
	say "demo shop on http://localhost:${STEPUP_DEMO_PORT:-8080} (codes appear below, from 'sender log')"
	exec "$ROOT/caddy" run --config "$ROOT/Caddyfile.example" --adapter caddyfile
	;;
test)
	run_tests
	;;
lint)
	lint
	;;
fuzz)
	fuzz
	;;
*)
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
