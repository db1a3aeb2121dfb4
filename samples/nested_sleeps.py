"""Nested sleeps: main -> methodA -> methodB -> methodC (40 ms) and methodD (60 ms), in a loop.

The DESIGN.md blog example as a program: per iteration methodB lasts 100 ms, of which methodC
is 40 % and methodD 60 %.
"""
import sys
import time


def methodC():
    time.sleep(0.040)


def methodD():
    time.sleep(0.060)


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
