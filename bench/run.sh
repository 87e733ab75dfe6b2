#!/usr/bin/env bash
# The benchmark suite of caddy-stepup: see bench/README.md.
#
#   bench/run.sh [--quick] [--out FILE]
#
#   --quick     one repetition of 1s per configuration, no warm-up (CI);
#               writes bench/out/BENCHMARKS-quick.md unless --out is given
#   --out FILE  where the Markdown report goes (default docs/BENCHMARKS.md)
#   --reps N, --duration Ns, --conns N   override the defaults (5, 5s, 32)
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
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) [ $# -ge 2 ] || die "--out needs a file"; out=$2; shift ;;
	--out=*) out=${1#--out=} ;;
	--reps|--duration|--conns) [ $# -ge 2 ] || die "$1 needs a value"; extra+=("-${1#--}" "$2"); shift ;;
	-h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
	./caddy list-modules 2>/dev/null | grep -qx 'http.handlers.stepup'; then
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

work=$OUTDIR/run-$(date -u +%Y%m%dT%H%M%SZ)
say "logs, configs and profiles of this run: $work"
exec "$OUTDIR/bin/runner" ${quick:+-quick} -out "$out" -caddy "$caddy" -bin "$OUTDIR/bin" \
	-bench bench -work "$work" -repo . -command "$command" ${extra[@]+"${extra[@]}"}
