"""On-CPU versus off-CPU: spin() burns the CPU for 300 ms (--phase), nap() sleeps 300 ms, in turn.
--report FILE writes what each really took, as JSON: {"spin_ms", "spin_cpu_ms", "nap_ms"} (on a
busy machine a sleeper wakes late and a spinner gets less CPU).

    python3 samples/cpu_vs_sleep.py --rounds 5 [--phase 0.3] [--report measured.json]
"""
import argparse
import json
import time


def spin(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def nap(seconds):
    time.sleep(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--phase", type=float, default=0.3, help="seconds of each spin and each nap")
    parser.add_argument("--report")
    args = parser.parse_args()
    measured = {"spin_ms": 0.0, "spin_cpu_ms": 0.0, "nap_ms": 0.0}
    for _ in range(args.rounds):
        t0, c0 = time.perf_counter(), time.thread_time()
        spin(args.phase)
        t1, c1 = time.perf_counter(), time.thread_time()
        nap(args.phase)
        t2 = time.perf_counter()
        measured["spin_ms"] += (t1 - t0) * 1000
        measured["spin_cpu_ms"] += (c1 - c0) * 1000
        measured["nap_ms"] += (t2 - t1) * 1000
    if args.report:
        with open(args.report, "w") as f:
            json.dump(measured, f)


if __name__ == "__main__":
    main()
