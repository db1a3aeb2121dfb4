"""On-CPU versus off-CPU: spin() burns the CPU for 300 ms, nap() sleeps 300 ms, in turn.

    python3 samples/cpu_vs_sleep.py --rounds 5
"""
import argparse
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
    args = parser.parse_args()
    for _ in range(args.rounds):
        spin(0.3)
        nap(0.3)


if __name__ == "__main__":
    main()
