"""Nested sleeps: main -> methodA -> methodB -> methodC (40 ms) and methodD (60 ms), in a loop.

The DESIGN.md blog example as a program: per iteration methodB lasts 100 ms, of which methodC
is 40 % and methodD 60 %. With a second argument, it writes what each sleep really took (a busy
machine wakes sleepers late) as JSON to that file: {"methodC_ms": total, "methodD_ms": total}.
Each measurement shares its sleep's line, so every sample of methodC or methodD is on that line.

    python3 samples/nested_sleeps.py 20 [measured.json]
"""
import json
import sys
import time

MEASURED = {"methodC_ms": 0.0, "methodD_ms": 0.0}


def methodC():
    t = time.perf_counter(); time.sleep(0.040); MEASURED["methodC_ms"] += (time.perf_counter() - t) * 1000  # noqa: E702


def methodD():
    t = time.perf_counter(); time.sleep(0.060); MEASURED["methodD_ms"] += (time.perf_counter() - t) * 1000  # noqa: E702


def methodB():
    methodC()
    methodD()


def methodA():
    methodB()


def main(iterations):
    for _ in range(iterations):
        methodA()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            json.dump(MEASURED, f)
