#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm machine, as CI runs it: installs what the tests
# need (build dependencies, ncurses for top, Debian's python3.11 with gevent, tmux for top's
# terminal test, xmllint, Chromium for the flame-graph
# and speedscope tests, Go for go tool pprof, npm for speedscope's package, debootstrap and man-db
# for the .deb test, jq, zstd, clang for fuzzing, libdw for native frames and for their tests
# python3.11-dev (a C extension built against Debian's 3.11), python3-numpy (BLAS frames), binutils
# and xz-utils (stripped builds, mini debuginfo), gunicorn, ab and curl (servers under a real load), and CPython 3.14/3.15 from Debian sid via
# ../shared/tools/get-python when that tool is present), then runs four steps:
#
#   suite     build from scratch in build-tests/ and run every test with ctest
#   sanitize  build with ASan + UBSan (-DSWPROF_SANITIZE=ON) in build-asan/; run the unit tests,
#             the fuzz regression files and the e2e tests labelled "sanitize"
#   fuzz      build the libFuzzer targets with clang in build-fuzz/; run each for 60 s from seeds
#             recorded by the suite's swprof (tests/fuzz/run.sh)
#   load      run the e2e tests labelled "load" while two busy loops hold both cores
#
#   tests/run.sh                        all four steps
#   SWPROF_CI_STEPS="suite load" tests/run.sh
#   tests/run.sh -R 3.12                arguments go to ctest: the suite step only, filtered
#
# Interpreters that cannot be had are skipped by their tests with a message naming them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-tests}"
steps="${SWPROF_CI_STEPS:-suite sanitize fuzz load}"
[ $# -gt 0 ] && steps="suite"
fuzz_seconds="${SWPROF_FUZZ_SECONDS:-60}"
jobs="$(nproc)"
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps=(cmake g++ make pkg-config libcli11-dev libfmt-dev libprotobuf-dev protobuf-compiler libzstd-dev zlib1g-dev catch2
      libncurses-dev python3 python3.11 python3-gevent libxml2-utils chromium chromium-driver patchelf
      golang-go dpkg-dev debootstrap man-db jq zstd util-linux clang libclang-rt-14-dev tmux
      libdw-dev python3.11-dev python3-numpy binutils xz-utils gunicorn apache2-utils curl)
missing=()
for p in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# speedscope's schema and app and the ajv validator come from npm, into a cache, when a test needs
# them (tests/e2e/speedscope_app.py); npm itself from Debian unless a Node.js with npm is there.
if ! command -v npm >/dev/null; then
  echo "tests: installing nodejs npm"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

get_python="${SWPROF_GET_PYTHON:-$root/../shared/tools/get-python}"
for v in 3.14 3.15; do
  if [ -x "$get_python" ]; then
    # sid builds gevent for 3.14 only: the greenlet tests run there and on Debian's 3.11.
    if [ "$v" = 3.14 ]; then
      "$get_python" --gevent "$v" >/dev/null 2>&1 || echo "tests: could not install gevent for Python $v; its gevent tests will be skipped"
    fi
    "$get_python" "$v" >/dev/null 2>&1 || echo "tests: could not install Python $v; its tests will be skipped"
  else
    echo "tests: $get_python not found; Python $v tests will be skipped"
  fi
done

# Their headers too, so the layout test checks the 3.14/3.15 tables against them.
extra_headers=""
for v in 3.14 3.15; do
  if dir=$("$root/tests/layout/fetch-sid-headers.sh" "$v" 2>/dev/null); then extra_headers="$extra_headers:$dir"
  else echo "tests: could not fetch the Python $v headers; the layout test will not check $v"; fi
done
export SWPROF_EXTRA_PYTHON_HEADERS="${extra_headers#:}"

failed=()
summary=()
# step NAME COMMAND...: runs a step, times it, remembers a failure and goes on with the others.
step() {
  local name="$1" start=$SECONDS
  shift
  echo "=== tests: step $name"
  if "$@"; then summary+=("$name: passed in $((SECONDS - start)) s")
  else failed+=("$name"); summary+=("$name: FAILED after $((SECONDS - start)) s"); fi
}

# (Inside `if`, bash ignores set -e: each command says || return.)
suite() {
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || return
  cmake --build "$build" -j"$jobs" || return
  ctest --test-dir "$build" --output-on-failure --timeout 600 "$@"
}

sanitize() {
  local asan="$root/build-asan"
  cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWPROF_SANITIZE=ON >/dev/null || return
  cmake --build "$asan" -j"$jobs" || return
  # Report every error, stop at the first (UBSan: -fno-sanitize-recover), leaks included.
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --test-dir "$asan" --output-on-failure --timeout 900 -L "unit|sanitize"
}

fuzz() {
  local fz="$root/build-fuzz" python
  python="$(command -v python3.11 || command -v python3)"
  cmake -S "$root" -B "$fz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DSWPROF_FUZZ=ON >/dev/null || return
  cmake --build "$fz" -j"$jobs" --target fuzz_reader fuzz_reader_framed fuzz_skywalking_import || return
  if [ ! -x "$build/swprof" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || return
    cmake --build "$build" -j"$jobs" --target swprof || return
  fi
  "$root/tests/fuzz/run.sh" "$fz" "$build/swprof" "$python" "$fuzz_seconds"
}

# The e2e subset beside two busy loops, one pinned to each core: what a shared CI machine does to
# the suite. Tests must assert what stays true under load.
busy=()
trap '[ ${#busy[@]} -eq 0 ] || kill "${busy[@]}" 2>/dev/null' EXIT
load() {
  local rc=0 cpu
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || return
  cmake --build "$build" -j"$jobs" || return
  for cpu in 0 1; do
    taskset -c "$((cpu % jobs))" yes >/dev/null &
    busy+=($!)
  done
  ctest --test-dir "$build" --output-on-failure --timeout 900 -L load || rc=$?
  kill "${busy[@]}" 2>/dev/null || true
  wait "${busy[@]}" 2>/dev/null || true
  busy=()
  return $rc
}

for s in $steps; do
  case "$s" in
    suite) step suite suite "$@" ;;
    sanitize) step sanitize sanitize ;;
    fuzz) step fuzz fuzz ;;
    load) step load load ;;
    *) echo "tests: unknown step $s (suite, sanitize, fuzz, load)"; exit 2 ;;
  esac
done
echo "=== tests: summary"
printf '  %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
