"""Stress for the profiler: threads created and ended in a loop, each recursing to a random depth
while doing a little work, and a main thread that recurses deeply too. Stacks and the thread list
change all the time, so a sampler reading from outside meets torn state constantly.

    python3 samples/stress.py --seconds 20
"""
import argparse
import random
import sys
import threading
import time

sys.setrecursionlimit(5000)


def dig(depth, work):
    if depth <= 0:
        total = 0
        for i in range(work):
            total += i * i
        return total
    return dig(depth - 1, work) + 1


def short_lived(seed):
    rng = random.Random(seed)
    for _ in range(rng.randint(1, 5)):
        dig(rng.randint(10, 300), rng.randint(100, 5000))
    time.sleep(rng.random() * 0.003)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=8, help="threads alive at once")
    args = parser.parse_args()
    deadline = time.monotonic() + args.seconds
    alive = []
    seed = 0
    while time.monotonic() < deadline:
        alive = [t for t in alive if t.is_alive()]
        while len(alive) < args.threads:
            seed += 1
            t = threading.Thread(target=short_lived, args=(seed,), name="churn-%d" % seed)
            t.start()
            alive.append(t)
        dig(random.randint(200, 800), 2000)
    for t in alive:
        t.join()
    print("stress: %d threads started" % seed, file=sys.stderr)


if __name__ == "__main__":
    main()
