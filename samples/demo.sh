#!/usr/bin/env bash
# The one-minute demo on a fresh Debian bookworm machine: installs the build dependencies, builds
# swprof, profiles the seed demo server under three POST requests, prints the analysis and writes
# a flame graph. Outputs go to ./demo-output/ (override with DEMO_OUT=dir).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${DEMO_OUT:-$PWD/demo-output}"
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

deps=(cmake g++ make pkg-config libcli11-dev libfmt-dev libprotobuf-dev protobuf-compiler libzstd-dev libncurses-dev catch2 python3)
missing=()
for p in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: installing ${missing[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/build" -j"$(nproc)" --target swprof >/dev/null
swprof="$root/build/swprof"
python="${PYTHON:-python3}"

mkdir -p "$out"
port_file="$out/port"
rm -f "$port_file"
echo "demo: profiling samples/seed_server.py under 3 POST requests (about 2 seconds)"
"$swprof" record -q -o "$out/demo.swp" -- "$python" "$root/samples/seed_server.py" --port 0 \
  --port-file "$port_file" --requests 3 &
recorder=$!
"$python" "$root/samples/seed_client.py" --port-file "$port_file" --count 3
wait "$recorder"
echo
"$swprof" analyze "$out/demo.swp" --min-percent 2
"$swprof" flamegraph "$out/demo.swp" -o "$out/demo.svg" --title "swprof demo: seed server"

echo
echo "demo: the same server, one segment per call of do_POST (--entry do_POST --min-duration 100ms)"
rm -f "$port_file"
"$swprof" record -q -o "$out/requests.swp" --entry do_POST --min-duration 100ms -- "$python" \
  "$root/samples/seed_server.py" --port 0 --port-file "$port_file" --requests 3 &
recorder=$!
"$python" "$root/samples/seed_client.py" --port-file "$port_file" --count 3 >/dev/null
wait "$recorder"
"$swprof" analyze "$out/requests.swp" --segments
echo
"$swprof" analyze "$out/requests.swp" --slowest 1 --estimator skywalking
echo
echo "demo: open $out/demo.svg in a browser for the flame graph"
