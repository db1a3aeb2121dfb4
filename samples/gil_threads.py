"""Who holds the GIL: one thread spins in pure Python (holds it), another alternates time.sleep
with zlib.compress of a large buffer (a C call that releases it).

    python3 samples/gil_threads.py --seconds 2
"""
import argparse
import threading
import time
import zlib

DATA = bytes(range(256)) * 40000  # 10 MB


def spinner(deadline):
    n = 0
    while time.monotonic() < deadline:
        n += 1


def sleeper(deadline):
    while time.monotonic() < deadline:
        time.sleep(0.1)
        zlib.compress(DATA, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    deadline = time.monotonic() + parser.parse_args().seconds
    threads = [threading.Thread(target=spinner, args=(deadline,), name="spinner"),
               threading.Thread(target=sleeper, args=(deadline,), name="sleeper")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
