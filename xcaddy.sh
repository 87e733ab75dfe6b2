#!/usr/bin/env bash
# Build, run and test a Caddy that contains caddy-stepup.
#
#   ./xcaddy.sh build   build ./caddy with xcaddy (pinned in tools/go.mod)
#   ./xcaddy.sh run     build if needed, then run the demo (Caddyfile.example)
#   ./xcaddy.sh test    every check and test: gofmt, vet, staticcheck, and
#                       go test -race ./... against a real redis-server and a
#                       real Caddy (installs Debian's redis-server if missing),
#                       fuzzing, each Go benchmark once, bench/run.sh --quick
#   ./xcaddy.sh lint    gofmt, go vet and staticcheck only
#   ./xcaddy.sh fuzz    every fuzz target for FUZZTIME (default 8s) each
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
MODULE=github.com/caddy-stepup/caddy-stepup
CADDY_VERSION=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)

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
	"$ROOT/caddy" list-modules | grep -qx 'http.handlers.stepup' || die "built ./caddy lacks http.handlers.stepup"
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
	local unformatted
	unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
	[ -z "$unformatted" ] || die "gofmt would change: $unformatted"
	say "go vet"
	go vet ./...
	say "staticcheck"
	mkdir -p "$ROOT/.bin"
	(cd "$ROOT/tools" && go build -o "$ROOT/.bin/staticcheck" honnef.co/go/tools/cmd/staticcheck)
	"$ROOT/.bin/staticcheck" ./...
}

# fuzz runs every fuzz target for a bounded time (FUZZTIME, default 8s),
# on top of its committed seed corpus (testdata/fuzz), which go test
# already replays as unit tests.
fuzz() {
	local t="${FUZZTIME:-8s}" pkg target out dir try
	out=$(mktemp)
	for pkg in $(go list ./...); do
		dir=$(go list -f '{{.Dir}}' "$pkg")
		for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
			for try in 1 2; do
				say "fuzz $pkg $target ($t)"
				if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$t" "$pkg" >"$out" 2>&1; then
					break
				fi
				tail -n 30 "$out" >&2
				# A failing input is written under testdata/fuzz: a real
				# failure. Without one, the fuzzing process itself failed
				# (a worker starved on a loaded machine): once more.
				if [ -n "$(git -C "$dir" status --porcelain -- "testdata/fuzz/$target" 2>/dev/null)" ] || [ "$try" = 2 ]; then
					rm -f "$out"
					die "fuzz target $target in $pkg failed (a failing input is under $dir/testdata/fuzz/$target when one was found)"
				fi
				say "fuzzing $target failed without a failing input: trying once more"
			done
		done
	done
	rm -f "$out"
}

run_tests() {
	ensure_packages
	lint
	build
	say "go test -race ./... (real redis-server, real Caddy at ./caddy)"
	STEPUP_CADDY_BIN="$ROOT/caddy" go test -race -count=1 -timeout 40m ./...
	fuzz
	# Benchmarks report, they do not gate: CI only checks that each Go
	# benchmark runs once and that the wrk suite runs end to end.
	say "every Go benchmark once (-benchtime 1x)"
	local out
	out=$(mktemp)
	if ! go test -run '^$' -bench . -benchtime 1x ./... >"$out" 2>&1; then
		grep -E -B2 -A8 '^(--- FAIL|FAIL|panic)' "$out" | tail -n 60 >&2
		rm -f "$out"
		die "a Go benchmark failed"
	fi
	rm -f "$out"
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
