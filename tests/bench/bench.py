"""swprof's speed and size, measured: the recorder's cost per sample, remote reads per sample,
bytes per sample and error rate for each installed interpreter on three workloads, and the time
to analyse a large file. Not part of ctest: run it on a quiet machine and read the figures with
the machine's noise in mind (run it twice).

    python3 tests/bench/bench.py --swprof build/swprof [--seconds 5] [--python pyenv-3.11 ...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

NAMES = harness.ALL_PYTHONS


def workloads(seconds):
    s = harness.SAMPLES
    return [
        ("1 thread, 6 frames", [os.path.join(s, "nested_sleeps.py"), str(int(seconds * 10))]),
        ("8 threads, up to 200 frames", [os.path.join(s, "known_stacks.py"), "--seconds", str(seconds)]),
        ("thread churn + deep recursion", [os.path.join(s, "stress.py"), "--seconds", str(seconds)]),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--python", action="append")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="swprof-bench-")
    rows = []
    biggest = None
    for name in args.python or NAMES:
        python, _ = harness.resolve_python(name)
        if not python:
            print("skip %s: not installed" % name)
            continue
        for label, argv in workloads(args.seconds):
            out = os.path.join(tmp, "bench.swp")
            subprocess.run([args.swprof, "record", "-q", "-o", out, "--", python] + argv, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rec = json.loads(subprocess.run([args.swprof, "analyze", "--format", "json", out], check=True,
                                            capture_output=True, text=True).stdout)["recording"]
            n = max(1, rec["samples"])
            rows.append((name, label, rec["samples"], rec["cost_mean_us"], rec["cost_max_us"], rec["remote_reads"] / n,
                         rec["file_bytes"] / n, 100.0 * rec["errors"] / max(1, rec["samples"] + rec["errors"])))
            if not biggest or rec["file_bytes"] > biggest[1]:
                biggest = (out + ".keep", rec["file_bytes"], rec["samples"])
                os.replace(out, biggest[0])
    print("\n%-12s %-30s %8s %10s %10s %8s %8s %8s" % ("python", "workload", "samples", "µs/sample", "max µs",
                                                       "reads/smp", "B/sample", "errors%"))
    for r in rows:
        print("%-12s %-30s %8d %10.1f %10.1f %8.1f %8.1f %8.3f" % r)
    if biggest:
        started = time.monotonic()
        subprocess.run([args.swprof, "analyze", biggest[0]], check=True, stdout=subprocess.DEVNULL)
        took = time.monotonic() - started
        print("\nanalyze of the largest file (%d samples, %d bytes): %.3f s, %.1f µs per sample"
              % (biggest[2], biggest[1], took, 1e6 * took / max(1, biggest[2])))


if __name__ == "__main__":
    main()
