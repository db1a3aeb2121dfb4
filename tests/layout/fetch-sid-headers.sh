#!/bin/sh
# fetch-sid-headers.sh VERSION: puts CPython VERSION's headers (Include/ with internal/) from Debian
# sid's libpython<VERSION>-dev package under ~/.cache/swprof/headers-VERSION and prints the
# include directory, for check_layout.py. Touches nothing else (a private apt state in a temp dir).
set -eu
VER="${1:?usage: fetch-sid-headers.sh VERSION}"
DEST="${XDG_CACHE_HOME:-$HOME/.cache}/swprof/headers-$VER"
if [ -f "$DEST/usr/include/python$VER/internal/pycore_pystate.h" ]; then
  echo "$DEST/usr/include/python$VER"; exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/lists/partial" "$WORK/cache/archives/partial"
echo "deb http://deb.debian.org/debian sid main" > "$WORK/sources.list"
APT="-o Dir::Etc::SourceList=$WORK/sources.list -o Dir::Etc::SourceParts=/dev/null \
 -o Dir::State::Lists=$WORK/lists -o Dir::Cache=$WORK/cache \
 -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null -o Debug::NoLocking=1"
# shellcheck disable=SC2086
apt-get $APT update >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 1; }
cd "$WORK"
# shellcheck disable=SC2086
apt-get $APT download "libpython$VER-dev" >"$WORK/log" 2>&1 || { cat "$WORK/log" >&2; exit 1; }
mkdir -p "$DEST"
for f in *.deb; do dpkg -x "$f" "$DEST"; done
echo "$DEST/usr/include/python$VER"
