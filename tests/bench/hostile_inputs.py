#!/usr/bin/env python3
"""The most expensive inputs under 1 MB we know how to make, and what swprof spends on them: peak
memory and time of each subcommand that reads them. The reader's limits make the cost grow with
the file (256 B of memory per byte, 64 MiB free); these files sit at or near those limits.

    python3 tests/bench/hostile_inputs.py --swprof build/swprof
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import swpfile  # noqa: E402


def peak_of(argv):
    """(exit code, seconds, peak RSS MiB, last stderr line) of one run, measured by GNU time: a
    child forked from this (large) Python process would count its pages until it execs."""
    proc = subprocess.run(["/usr/bin/time", "-f", "@@%x %e %M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    lines = [l for l in proc.stderr.decode("utf-8", "replace").strip().splitlines() if not l.startswith("Command ")]
    code, seconds, kib = lines[-1][2:].split()
    last = lines[-2] if len(lines) > 1 else ""
    return int(code), float(seconds), int(kib) / 1024.0, last


def samples_file(n, stacks, deep, threads=1, bits=1, rng=random.Random(1)):
    """n samples over `stacks` stacks `deep` frames deep, with `bits` random bits per sample (one
    bit: the chunk compresses ~50x, under the reader's 1024x), each a 10 ms dump in one segment per
    thread."""
    strings = ["/app/x.py"] + ["f%d" % i for i in range(64)]
    frames = [(1 + i % 64, 0, i, i) for i in range(64)]
    stack_list = [[(k + d) % 64 for d in range(deep)] for k in range(stacks)]
    cols = dict(time_deltas=[10000 if i else 0 for i in range(n)], threads=[i % threads for i in range(n)],
                stacks=[rng.randrange(stacks) for _ in range(n)], walls=[10000] * n, cpus=[rng.getrandbits(bits) for _ in range(n)],
                flags=[0] * n, segments=[1 + i % threads for i in range(n)])
    segments = [(t + 1, t, 0, 0) for t in range(threads)]
    return swpfile.file_bytes(
        swpfile.record(swpfile.HEADER, zstd(swpfile.header())),
        swpfile.record(swpfile.CHUNK, zstd(swpfile.chunk(strings, frames, stack_list, [(t, "t") for t in range(threads)],
                                                         segments, [(t + 1, 10000 * n) for t in range(threads)], cols))))


def zstd(data):
    """Really compressed (the zstd command), so that files stay under 1 MB; from a file, so that
    the frame says its size, as swprof requires."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return subprocess.run(["zstd", "-q", "-19", "-c", "--no-progress", f.name], capture_output=True, check=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    args = parser.parse_args()
    cases = {
        "many samples (2M, 1 shallow stack)": samples_file(2000000, 1, 3),
        "as many samples as 1 MB may hold (2M, 4 random bits each)": samples_file(2000000, 1, 3, bits=4),
        "samples x deep stacks (200k x 2,000 frames)": samples_file(200000, 4, 2000),
        "threads x deep stacks (64 threads, 4,000 frames)": samples_file(20000, 2, 4000, threads=64),
    }
    commands = [["analyze"], ["analyze", "--estimator", "skywalking"], ["analyze", "--by-thread"],
                ["analyze", "--format", "json"], ["flamegraph", "-o", "/dev/null"],
                ["export", "--format", "skywalking", "-o", "/dev/null"]]
    worst = (0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in cases.items():
            path = os.path.join(tmp, "case.swp")
            open(path, "wb").write(data)
            print("%s: %d bytes" % (name, len(data)))
            for cmd in commands:
                argv = [args.swprof, cmd[0], path] + cmd[1:]
                code, seconds, rss, last = peak_of(argv)
                worst = (max(worst[0], rss), max(worst[1], seconds))
                print("  %-40s exit %d  %6.2f s  %7.0f MiB  %s" % (" ".join(cmd), code, seconds, rss, last[:90]))
    print("worst: %.0f MiB, %.1f s" % worst)


if __name__ == "__main__":
    main()
