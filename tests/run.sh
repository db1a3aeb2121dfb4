#!/usr/bin/env bash
# The whole test suite on a fresh Debian bookworm machine: installs what the tests need (build
# dependencies, Debian's python3.11 with gevent, xmllint, Chromium for the flame-graph and
# speedscope tests, Go for go tool pprof, npm for speedscope's package, debootstrap and man-db for
# the .deb test, libdw for native frames and for their tests python3.11-dev (a C extension built
# against Debian's 3.11), python3-numpy (BLAS frames), binutils and xz-utils (stripped builds, mini
# debuginfo), and CPython 3.14/3.15 from Debian sid via ../shared/tools/get-python when that
# tool is present, with sid's gevent for 3.14),
# builds from scratch in build-tests/, and runs every test with ctest. Interpreters that cannot be
# had are skipped by their tests with a message naming them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build-tests}"
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps=(cmake g++ make pkg-config libcli11-dev libfmt-dev libprotobuf-dev protobuf-compiler libzstd-dev zlib1g-dev catch2
      python3 python3.11 python3-gevent libxml2-utils chromium chromium-driver patchelf
      golang-go dpkg-dev debootstrap man-db libdw-dev python3.11-dev python3-numpy binutils xz-utils)
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

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure --timeout 600 "$@"
