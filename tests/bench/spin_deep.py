"""A target for tests/bench/vs_austin.py.

    spin_deep.py --threads T --depth D          T threads (the main one included), each spinning
                                                forever D frames deep; prints "ready" when they run
    spin_deep.py ... --idle N                    and N more threads, each blocked D frames deep (a
                                                server's idle workers)
    spin_deep.py --work ROUNDS                   prints "ready", waits for a line on stdin, then runs
                                                ROUNDS of a CPU-bound loop (a few frames deep) and
                                                prints its own run time and CPU time in seconds
    spin_deep.py --chunks SECONDS                prints "ready", then runs the same loop in chunks
                                                of about 10 ms for SECONDS and prints one JSON list
                                                of [start, end, cpu] per chunk (time.monotonic()
                                                and thread CPU seconds)
"""
import argparse
import json
import sys
import threading
import time


def spin():
    x = 0
    while True:
        x += 1


def descend(depth, leaf=spin):
    if depth <= 1:
        leaf()
    else:
        descend(depth - 1, leaf)


def block():
    threading.Event().wait()


def work(n):
    # Calls several frames deep, so a sample has a stack to walk.
    def leaf(i):
        return (i * 7) % 13

    def middle(k):
        s = 0
        for i in range(k):
            s += leaf(i)
        return s

    total = 0
    for _ in range(n):
        total += middle(1000)
    return total


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--depth", type=int, default=24)
    parser.add_argument("--idle", type=int, default=0)
    parser.add_argument("--work", type=int)
    parser.add_argument("--chunks", type=float)
    args = parser.parse_args()
    sys.setrecursionlimit(max(1000, args.depth + 100))
    if args.work:
        print("ready", flush=True)
        sys.stdin.readline()
        t, c = time.perf_counter(), time.process_time()
        work(args.work)
        print("%.6f %.6f" % (time.perf_counter() - t, time.process_time() - c), flush=True)
        return
    if args.chunks:
        # Rounds of about 10 ms, so a window of a fifth of a second holds a score of them.
        t = time.monotonic()
        work(20)
        rounds = max(1, int(20 * 0.01 / max(1e-6, time.monotonic() - t)))
        print("ready", flush=True)
        chunks = []
        end = time.monotonic() + args.chunks
        while True:
            t, c = time.monotonic(), time.thread_time()
            work(rounds)
            t2 = time.monotonic()
            chunks.append([t, t2, time.thread_time() - c])
            if t2 >= end:
                break
        print(json.dumps(chunks), flush=True)
        return
    for _ in range(args.threads - 1):
        threading.Thread(target=descend, args=(args.depth,), daemon=True).start()
    for _ in range(args.idle):
        threading.Thread(target=descend, args=(args.depth, block), daemon=True).start()
    print("ready", flush=True)
    descend(args.depth)


if __name__ == "__main__":
    main()
