"""How long `swprof dump` takes to answer for a process of 100 threads (samples/many_threads.py:
each waiting on an Event, eight frames deep), on every installed interpreter: the wall time of the
whole command (start, finding the interpreter, reading every thread, printing) and the dump's own
read time (its read_ms), median and worst of --repeat runs, plus one run with --locals. Fails
(exit 1) when a median wall time reaches --bound (default 100 ms): the bound the issue sets.
Not part of ctest (wall time on a shared machine): run it on a quiet one.

    python3 tests/bench/dump_bench.py --swprof build/swprof [--python pyenv-3.12 ...] [--repeat 20]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

MANY = os.path.join(harness.SAMPLES, "many_threads.py")


def measure(swprof, python, threads, repeat, tmp):
    ready = os.path.join(tmp, "ready")
    if os.path.exists(ready):
        os.unlink(ready)
    program = subprocess.Popen([python, MANY, str(threads), "--ready-file", ready])
    try:
        harness.wait_for_file(ready, 60)
        time.sleep(0.3)  # every thread is in its wait
        walls, reads = [], []
        for _ in range(repeat):
            start = time.monotonic()
            out = subprocess.run([swprof, "dump", "--pid", str(program.pid), "--format", "json"], capture_output=True,
                                 text=True, timeout=60, check=True)
            walls.append((time.monotonic() - start) * 1000)
            doc = json.loads(out.stdout)
            assert len(doc["threads"]) == threads + 1, "every thread listed"
            reads.append(doc["read_ms"])
        start = time.monotonic()
        subprocess.run([swprof, "dump", "--pid", str(program.pid), "--locals"], capture_output=True, timeout=60,
                       check=True)
        with_locals = (time.monotonic() - start) * 1000
        return walls, reads, with_locals
    finally:
        program.kill()
        program.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--python", action="append", help="interpreter names (default: every installed one)")
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--bound", type=float, default=100.0, help="ms; a median wall time at or above it fails")
    args = parser.parse_args()
    names = args.python or harness.ALL_PYTHONS
    failed = False
    print("%-12s %10s %10s %10s %10s %12s" % ("python", "wall med", "wall max", "read med", "read max", "--locals"))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            python, description = harness.resolve_python(name)
            if not python:
                print("%-12s not installed (%s)" % (name, description))
                continue
            walls, reads, with_locals = measure(args.swprof, python, args.threads, args.repeat, tmp)
            median = statistics.median(walls)
            failed |= median >= args.bound
            print("%-12s %8.1fms %8.1fms %8.1fms %8.1fms %10.1fms%s" % (
                name, median, max(walls), statistics.median(reads), max(reads), with_locals,
                "  over the bound" if median >= args.bound else ""))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
