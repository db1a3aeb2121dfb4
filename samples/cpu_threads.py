"""Multi-threaded CPU-bound work: N named threads, each spinning in its own function.

    python3 samples/cpu_threads.py --threads 4 --seconds 3
"""
import argparse
import threading
import time


def count_primes(limit):
    found = 0
    for n in range(2, limit):
        for d in range(2, int(n ** 0.5) + 1):
            if n % d == 0:
                break
        else:
            found += 1
    return found


def fibonacci(n):
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


def sum_squares(n):
    return sum(i * i for i in range(n))


WORKERS = [count_primes, fibonacci, sum_squares]
ARGS = {count_primes: 20000, fibonacci: 20, sum_squares: 100000}


def worker(index, deadline):
    job = WORKERS[index % len(WORKERS)]
    while time.monotonic() < deadline:
        job(ARGS[job])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    threads = [threading.Thread(target=worker, args=(i, deadline), name="worker-%d" % i) for i in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
