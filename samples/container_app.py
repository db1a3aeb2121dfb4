"""A small service for the container tests: two named worker threads that compute and sleep in
turns, and a main thread that waits. Prints "ready" once its threads run.

    python3 samples/container_app.py --seconds 5
"""
import argparse
import threading
import time


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def worker(deadline):
    while time.monotonic() < deadline:
        crunch(20000)
        time.sleep(0.002)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=worker, args=(deadline,), name="worker-%d" % i) for i in range(2)]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
