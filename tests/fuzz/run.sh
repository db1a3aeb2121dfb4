#!/usr/bin/env bash
# Runs every fuzz target for a while, starting from seeds made from real recordings and from the
# regression files; fails if any target finds a crash, a leak, a timeout or an out-of-memory.
#
#   tests/fuzz/run.sh FUZZ_BUILD SWPROF PYTHON [SECONDS_PER_TARGET] [MAX_LEN]
#
# FUZZ_BUILD is a build with -DSWPROF_FUZZ=ON (clang); SWPROF and PYTHON record the seeds. CI runs
# 60 s per target with inputs up to 64 KiB; a longer search, e.g. an hour per target with inputs up
# to 1 MiB:   tests/fuzz/run.sh build-fuzz build/swprof python3 3600 1048576
# Findings are left in FUZZ_BUILD/fuzz-artifacts/<target>/ (see tests/fuzz/regressions/README.md).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(cd "$1" && pwd)"; swprof="$2"; python="$3"; seconds="${4:-60}"; max_len="${5:-65536}"
corpus="$build/fuzz-corpus"
if [ ! -d "$corpus/fuzz_reader" ] || [ -z "$(ls -A "$corpus/fuzz_reader" 2>/dev/null)" ]; then
  python3 "$here/make_seeds.py" --swprof "$swprof" --python "$python" --out "$corpus" || exit 1
fi
status=0
for target in fuzz_reader fuzz_reader_framed fuzz_skywalking_import; do
  artifacts="$build/fuzz-artifacts/$target"
  mkdir -p "$artifacts" "$corpus/$target"
  log="$build/fuzz-artifacts/$target.log"
  # The timeout is wall-clock time: generous, so that a shared machine's load is not a finding
  # (the slowest unit is reported either way). The regression files are not seeds (ctest replays
  # them): the large ones would slow the search down.
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1" \
  "$build/tests/fuzz/$target" -max_total_time="$seconds" -timeout=60 -report_slow_units=60 -rss_limit_mb=2048 -max_len="$max_len" \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus/$target" >"$log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  slowest=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -1)
  found=$(ls "$artifacts" | grep -E '^(crash|leak|timeout|oom)-' || true)
  echo "fuzz: $target: ${runs:-?} executions in ${seconds}s, peak RSS ${rss:-?} MB, slowest input ${slowest:-?} s, corpus $(ls "$corpus/$target" | wc -l) inputs"
  if [ $rc -ne 0 ] || [ -n "$found" ]; then
    echo "fuzz: $target FOUND A PROBLEM (exit $rc): $found — see $log"
    tail -40 "$log"
    status=1
  fi
done
exit $status
