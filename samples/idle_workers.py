"""A thread pool that is mostly idle, as a server's between requests, with threads that wake:

    idle-N       blocked for good on a queue, a few frames deep (a pool worker with no work)
    alternate-N  30 ms in park_short, then 90 ms in park_long, again and again (each wait a
                 timeout: the thread wakes, runs a little, and waits somewhere else)
    waker        every 100 ms hands one job to a worker of its own, which runs it for ~5 ms
                 (handle_job) and waits again (wait_for_job)
    cruncher     never waits: 2 ms in crunch_short, then 6 ms in crunch_long, again and again
    short-N      threads that start, wait 40 ms in short_lived and end, one after another

With --calm, only the idle threads and the cruncher (nothing else wakes: the cruncher then runs
for milliseconds without being switched out, and its schedstat counters stand still in between).

Prints one JSON line {"alternate": [native ids], "idle": [...], "worker": id, "cruncher": id} when all run, then
runs for --seconds. With --spent-on-stdin it runs until its standard input ends instead, and for
each line read prints {"spent": {"crunch_short": ms, "crunch_long": ms}}: the wall time each of the
cruncher's functions took so far.

    python3 samples/idle_workers.py --idle 24 --alternating 4 --seconds 3
"""
import argparse
import json
import queue
import sys
import threading
import time

ids = {"alternate": [], "idle": []}
# The wall time the cruncher's functions took so far (ms): 2 and 6 of every 8 when it runs
# unhindered; on a busy machine a preemption stretches whichever it lands in.
spent = {"crunch_short": 0.0, "crunch_long": 0.0}
lock = threading.Lock()


def register(kind):
    with lock:
        if kind in ids:
            ids[kind].append(threading.get_native_id())
        else:
            ids[kind] = threading.get_native_id()


def idle_wait(q):
    return q.get()


def idle_worker(q, depth):
    if depth > 0:
        return idle_worker(q, depth - 1)
    register("idle")
    return idle_wait(q)


def park_short(event):
    event.wait(0.03)


def park_long(event):
    event.wait(0.09)


def alternate():
    event = threading.Event()
    register("alternate")
    while True:
        park_short(event)
        park_long(event)


def handle_job(n):
    end = time.perf_counter() + n
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def wait_for_job(jobs):
    return jobs.get()


def worker(jobs):
    register("worker")
    while True:
        handle_job(wait_for_job(jobs))


def waker(jobs):
    while True:
        time.sleep(0.1)
        jobs.put(0.005)


def crunch_for(seconds):
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


def crunch_short():
    crunch_for(0.002)


def crunch_long():
    crunch_for(0.006)


def crunch():
    register("cruncher")
    while True:
        t0 = time.perf_counter()
        crunch_short()
        t1 = time.perf_counter()
        crunch_long()
        t2 = time.perf_counter()
        spent["crunch_short"] += (t1 - t0) * 1000
        spent["crunch_long"] += (t2 - t1) * 1000


def short_lived():
    time.sleep(0.04)


def churn():
    while True:
        t = threading.Thread(target=short_lived, name="short")
        t.start()
        t.join()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=int, default=24)
    parser.add_argument("--alternating", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--calm", action="store_true")
    parser.add_argument("--spent-on-stdin", action="store_true")
    args = parser.parse_args()
    never = queue.Queue()
    jobs = queue.Queue()
    threads = [threading.Thread(target=idle_worker, args=(never, 8), name="idle-%d" % i, daemon=True)
               for i in range(args.idle)]
    threads.append(threading.Thread(target=crunch, name="cruncher", daemon=True))
    if args.calm:
        args.alternating = 0
        ids["worker"] = None
    else:
        threads += [threading.Thread(target=alternate, name="alternate-%d" % i, daemon=True) for i in range(args.alternating)]
        threads += [threading.Thread(target=worker, args=(jobs,), name="worker", daemon=True),
                    threading.Thread(target=waker, args=(jobs,), name="waker", daemon=True),
                    threading.Thread(target=churn, name="churn", daemon=True)]
    for t in threads:
        t.start()
    while True:
        with lock:
            if len(ids["idle"]) == args.idle and len(ids["alternate"]) == args.alternating and len(ids) == 4:
                break
        time.sleep(0.01)
    print(json.dumps(ids), flush=True)
    if not args.spent_on_stdin:
        time.sleep(args.seconds)
        return
    for _ in sys.stdin:
        print(json.dumps({"spent": dict(spent)}), flush=True)


if __name__ == "__main__":
    main()
