#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs every libFuzzer harness of tests/fuzz for a fixed time, each on a copy
# of its seed corpus (the repository's corpus is never written), and fails
# on any crash, sanitizer report, leak, timeout or out-of-memory.
#
# Usage: tests/fuzz/run-fuzz.sh [SECONDS] [BUILD_DIR]
#   SECONDS    per harness (default 20)
#   BUILD_DIR  a build directory configured with clang and -Dfuzz=true
#              (default: build-fuzz in the source tree; set up when missing)
# Environment:
#   FUZZ_HARNESSES  harnesses to run, space-separated (default: all)
#   FUZZ_RUNS       stop each harness after this many executions instead
#                   (SECONDS stays the upper bound)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (10)
#   FUZZ_ARGS       more libFuzzer flags, e.g. "-jobs=2" or "-seed=1"
#   FUZZ_CC         the compiler when BUILD_DIR is set up (default clang)
#
# What each run leaves, in BUILD_DIR/fuzz-runs/NAME/: corpus/ (the seed
# corpus plus what the run added), artifacts/ (the reproducer when it
# failed), log (libFuzzer's output). Replay a reproducer with
#   BUILD_DIR/tests/fuzz/fuzz-NAME FILE
# Exit status: 0 when every harness passed, 1 otherwise (and on a build
# failure). The last line is "N passed, N failed".
set -u

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
seconds=${1:-20}
build=${2:-$src/build-fuzz}
timeout=${FUZZ_TIMEOUT:-10}

# Harness: the largest input each one gets, from what the real reader accepts.
declare -A max_len=(
  [bdf]=64            # a BDF is 12 bytes
  [journal]=65536     # a journal with a few dozen devices and sandboxes is ~20 KiB
  [serial]=131073     # 1 byte picks the read size, then 128 KiB of console (twice the 64 KiB partial-line bound)
  [report]=65600      # the report cap is 64 KiB (VFD_REPORT_MAX): a little more, to cross it
  [cmdline]=16383     # guest-init reads /proc/cmdline into 16 KiB (the kernel's limit is 2 KiB)
  [manifest]=65535    # guest-init reads the manifest into 64 KiB
  [payload]=65536     # the format allows 8 MiB; 64 KiB holds every record kind many times
  [hostdevs]=65536    # a domain's XML with a few dozen devices is ~10 KiB
)
all_harnesses="bdf journal serial report hostdevs cmdline manifest payload"
harnesses=${FUZZ_HARNESSES:-$all_harnesses}

case $seconds in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [BUILD_DIR]" >&2; exit 1 ;;
esac
for h in $harnesses; do
  [ -n "${max_len[$h]:-}" ] || { echo "run-fuzz: unknown harness '$h' (known: $all_harnesses)" >&2; exit 1; }
done

# --- build ---
if [ ! -f "$build/build.ninja" ]; then
  echo "run-fuzz: setting up $build (clang, -Dfuzz=true)"
  if ! CC=${FUZZ_CC:-clang} nice -n 19 meson setup "$build" "$src" -Dfuzz=true >"$build.setup.log" 2>&1; then
    tail -n 20 "$build.setup.log" >&2
    echo "run-fuzz: meson setup failed (full log: $build.setup.log)" >&2
    exit 1
  fi
  rm -f "$build.setup.log"
elif ! meson introspect --buildoptions "$build" | grep -q '"name": "fuzz", "value": true'; then
  echo "run-fuzz: $build is not configured with -Dfuzz=true (and clang); use another directory" >&2
  exit 1
fi
targets=()
for h in $harnesses; do targets+=("fuzz-$h"); done
if ! nice -n 19 meson compile -C "$build" "${targets[@]}" >"$build/fuzz-build.log" 2>&1; then
  tail -n 30 "$build/fuzz-build.log" >&2
  echo "run-fuzz: build failed (full log: $build/fuzz-build.log)" >&2
  exit 1
fi

# --- run ---
# GLib: plain malloc for every block, so ASan sees each one.
export G_SLICE=always-malloc G_DEBUG=gc-friendly
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:handle_abort=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if ! command -v llvm-symbolizer >/dev/null; then
  for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do
    [ -x "$s" ] && export ASAN_SYMBOLIZER_PATH=$s
  done
fi

passed=0 failed=0
for h in $harnesses; do
  exe=$build/tests/fuzz/fuzz-$h
  out=$build/fuzz-runs/$h
  rm -rf "$out"
  mkdir -p "$out/artifacts"
  cp -r "$here/corpus/$h" "$out/corpus"
  seeds=$(find "$out/corpus" -type f | wc -l)
  args=(-max_total_time="$seconds" -max_len="${max_len[$h]}" -timeout="$timeout" -rss_limit_mb=2048
        -artifact_prefix="$out/artifacts/" -print_final_stats=1)
  [ -f "$here/dict/$h.dict" ] && args+=(-dict="$here/dict/$h.dict")
  [ -n "${FUZZ_RUNS:-}" ] && args+=(-runs="$FUZZ_RUNS")
  # shellcheck disable=SC2206 # FUZZ_ARGS is a list of flags
  [ -n "${FUZZ_ARGS:-}" ] && args+=($FUZZ_ARGS)

  # Scratch files (the journal harness writes journal.json there): tmpfs
  # when there is one, removed afterwards even when the harness crashed.
  scratch=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/vfiod-fuzz-XXXXXX")
  start=$(date +%s)
  FUZZ_TMPDIR=$scratch nice -n 19 "$exe" "${args[@]}" "$out/corpus" >"$out/log" 2>&1
  rc=$?
  elapsed=$(($(date +%s) - start))
  rm -rf "$scratch"

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$out/log" | tail -n 1 | tr -d '#')
  last=$(grep -E '^#[0-9]+.*cov: ' "$out/log" | tail -n 1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(find "$out/corpus" -type f | wc -l)
  artifacts=$(find "$out/artifacts" -type f ! -name 'slow-unit-*' | sort)
  n_artifacts=$(grep -c . <<<"$artifacts")
  rate=$((${execs:-0} / (elapsed > 0 ? elapsed : 1)))

  printf '%-9s %s executions in %s s (%s/s), coverage %s edges / %s features, corpus %s -> %s, crashes %s\n' \
    "$h:" "${execs:-?}" "$elapsed" "$rate" "${cov:-?}" "${ft:-?}" "$seeds" "$corp" "$n_artifacts"
  if [ "$rc" -eq 0 ] && [ "$n_artifacts" -eq 0 ] && [ -n "$execs" ]; then
    passed=$((passed + 1))
    continue
  fi
  failed=$((failed + 1))
  echo "  FAILED (libFuzzer exit status $rc); log: $out/log"
  # The report: from the first sanitizer/invariant/GLib line to libFuzzer's summary.
  sed -n '/ERROR: \|invariant broken\|GLib critical\|GLib warning\|GLib error\|runtime error\|==ERROR\|ALARM\|out-of-memory/,/^SUMMARY/p' \
    "$out/log" | head -n 40 | sed 's/^/  | /'
  for a in $artifacts; do
    echo "  reproducer: $a"
    echo "  replay:     $exe $a"
  done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
