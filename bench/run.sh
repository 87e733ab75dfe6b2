#!/usr/bin/env bash
# The benchmark suite of caddy-stepup: see bench/README.md.
#
#   bench/run.sh [--quick] [--out FILE]
#
#   --quick     one repetition of 1s per configuration, no warm-up (CI);
#               writes bench/out/BENCHMARKS-quick.md unless --out is given
#   --out FILE  where the Markdown report goes (default docs/BENCHMARKS.md)
#   --reps N, --duration Ns, --conns N   override the defaults (10, 4s, 32)
#   --no-peer   leave out the peer row (caddy-security); the full run
#               builds it (cached in bench/out/peer/), --quick uses it
#               only when that build is already there
#   --no-scaling  leave out the scaling table (full run only)
#
# Needs Go, wrk and redis-server (installed with apt-get when missing and
# run as root). Exits non-zero when a configuration cannot be run or
# answers wrongly, never because a target was missed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUTDIR=bench/out

die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

quick=
out=
peer=1
scaling=1
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; out=$2; shift ;;
	--out=*) out=${1#--out=} ;;
	--no-peer) peer= ;;
	--no-scaling) scaling= ;;
	--reps|--duration|--conns) [ $# -ge 2 ] || die "$1 needs a value"; extra+=("-${1#--}" "$2"); shift ;;
	-h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done
if [ -z "$out" ]; then
	if [ -n "$quick" ]; then out=$OUTDIR/BENCHMARKS-quick.md; else out=docs/BENCHMARKS.md; fi
fi
command="bench/run.sh${quick:+ --quick}"
[ "$out" = docs/BENCHMARKS.md ] || command="$command --out $out"
[ ${#extra[@]} -eq 0 ] || command="$command ${extra[*]/#-/--}"

command -v go >/dev/null 2>&1 || die "Go is required"
# wrk and redis-server: installed from Debian's packages when missing and
# run as root (as in CI), else a clear error.
for tool in wrk redis-server; do
	command -v "$tool" >/dev/null 2>&1 && continue
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "installing Debian's $tool package"
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$tool" >/dev/null 2>&1 ||
			{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$tool" >/dev/null; } ||
			die "could not install $tool with apt-get"
	fi
	command -v "$tool" >/dev/null 2>&1 || die "$tool is required (Debian: apt-get install wrk redis-server)"
done
mkdir -p "$OUTDIR/bin"

# Caddy with the plugin: ./caddy (./xcaddy.sh build) when it is newer than
# every source and embedded file of the module, else go build of
# ./internal/caddybin, which builds the same Caddy from this go.mod.
newer_source() {
	find caddystepup.go go.mod go.sum caddymodule stepup sender internal \
		-type f ! -name '*_test.go' ! -path '*/testdata/*' -newer "$1" -print -quit
}
caddy=
if [ -x ./caddy ] && [ -z "$(newer_source ./caddy)" ] &&
	./caddy list-modules 2>/dev/null | grep -x 'http.handlers.stepup' >/dev/null; then
	caddy=./caddy
	say "using ./caddy (newer than the sources)"
else
	say "building Caddy with the plugin (go build ./internal/caddybin)"
	go build -o "$OUTDIR/caddy" ./internal/caddybin
	caddy=$OUTDIR/caddy
fi
# bench/ is a Go module of its own (bench/go.mod), so that its tools stay
# out of the plugin's requirements; it uses this checkout of the plugin.
say "building the runner and its helpers (bench/cmd, module bench)"
(cd bench && go build -o "$ROOT/$OUTDIR/bin/" ./cmd/...)

# The peer row (P): Caddy (the version of this go.mod) with caddy-security's
# authorize, pinned here, built by xcaddy from the tools module into
# bench/out/peer/ once and reused. A full run builds it when missing (a
# cold build takes minutes); --quick only uses a build that is there. A
# failed build leaves the row out, says why in the report, and the rest
# of the suite runs.
PEER_MODULE=github.com/greenpau/caddy-security
PEER_VERSION=v1.1.64
CADDY_VERSION=$(go list -m -f '{{.Version}}' github.com/caddyserver/caddy/v2)
peer_bin=$OUTDIR/peer/caddy-$CADDY_VERSION-caddy-security-$PEER_VERSION
peer_args=()
if [ -z "$peer" ]; then
	peer_args=(-peer-note "left out of this run (--no-peer)")
elif [ -x "$peer_bin" ]; then
	say "using the peer $peer_bin (cached)"
	peer_args=(-peer "$peer_bin")
elif [ -n "$quick" ]; then
	peer_args=(-peer-note "not built: --quick uses the peer only when a full run has built it (bench/out/peer/)")
else
	mkdir -p "$OUTDIR/peer"
	say "building the peer: Caddy $CADDY_VERSION with $PEER_MODULE@$PEER_VERSION (xcaddy, cold: several minutes; log in $OUTDIR/peer/build.log)"
	if (cd tools && go tool xcaddy build "$CADDY_VERSION" --output "$ROOT/$peer_bin.tmp" \
		--with "$PEER_MODULE@$PEER_VERSION") >"$OUTDIR/peer/build.log" 2>&1 &&
		"$peer_bin.tmp" list-modules 2>/dev/null | grep -x 'http.authentication.providers.authorizer' >/dev/null; then
		mv "$peer_bin.tmp" "$peer_bin"
		peer_args=(-peer "$peer_bin")
	else
		rm -f "$peer_bin.tmp"
		why=$(grep -v '^\s*$' "$OUTDIR/peer/build.log" | tail -n 1 | tr -d '|`' | cut -c1-200)
		say "the peer could not be built: $why (the suite runs without it)"
		peer_args=(-peer-note "the xcaddy build of Caddy $CADDY_VERSION with $PEER_MODULE@$PEER_VERSION failed ($why; log in bench/out/peer/build.log)")
	fi
fi
[ -n "$scaling" ] && [ -z "$quick" ] && peer_args+=(-scaling)

work=$OUTDIR/run-$(date -u +%Y%m%dT%H%M%SZ)
say "logs, configs and profiles of this run: $work"
exec "$OUTDIR/bin/runner" ${quick:+-quick} -out "$out" -caddy "$caddy" -bin "$OUTDIR/bin" \
	-bench bench -work "$work" -repo . -command "$command" "${peer_args[@]}" ${extra[@]+"${extra[@]}"}
