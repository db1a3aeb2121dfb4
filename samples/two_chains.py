"""Two call chains that never mix: p1 -> p2 -> p3 -> p4, then q1 -> q2 -> q3 -> q4, in a tight
loop. Every stack this program has is a prefix of one chain; a profiler that shows p1 -> q2 (or
any other mix) read frames of two moments.

    python3 samples/two_chains.py --seconds 3
"""
import argparse
import time


def p4(n):
    s = 0
    for i in range(n):
        s += i
    return s


def p3(n):
    return p4(n)


def p2(n):
    return p3(n)


def p1(n):
    return p2(n)


def q4(n):
    s = 0
    for i in range(n):
        s += i
    return s


def q3(n):
    return q4(n)


def q2(n):
    return q3(n)


def q1(n):
    return q2(n)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        for _ in range(50):
            p1(20)
            q1(20)


if __name__ == "__main__":
    main()
