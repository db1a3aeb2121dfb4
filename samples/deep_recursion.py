"""A recursion thousands of frames deep whose innermost frames keep changing: recurse(depth) calls
itself down to the bottom, where work() spins; the outer frames stay put, as in a deep parser or
a recursive tree walk.

    python3 samples/deep_recursion.py --depth 3000 --seconds 3
"""
import argparse
import sys
import time


def work(n):
    total = 0
    for i in range(n):
        total += i % 7
    return total


def leaf(n):
    return work(n) + work(n // 2)


def recurse(depth, deadline):
    if depth > 0:
        return recurse(depth - 1, deadline)
    while time.monotonic() < deadline:
        leaf(2000)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    sys.setrecursionlimit(args.depth + 1000)
    recurse(args.depth, time.monotonic() + args.seconds)


if __name__ == "__main__":
    main()
