"""Requests that wait before they compute, as gevent handlers do: each `handle` greenlet yields to
the hub three times (a "database call", gevent.sleep) and then spins. Ten run at once; each
reports its own duration.

    python3 samples/gevent_requests.py --report /tmp/handlers.jsonl
"""
import argparse
import json
import time

import gevent

WAITS = 3
WAIT_S = 0.05
SPIN_S = 0.02
records = []


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def query(i):
    gevent.sleep(WAIT_S)


def handle(i):
    started = time.monotonic()
    for _ in range(WAITS):
        query(i)
    spin(SPIN_S)
    records.append({"job": i, "start": started, "end": time.monotonic()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--report")
    args = parser.parse_args()
    time.sleep(0.3)  # let a profiler attach its probes before the first greenlet is made
    for _ in range(args.rounds):
        gevent.joinall([gevent.spawn(handle, i) for i in range(args.count)])
    if args.report:
        with open(args.report, "w") as f:
            for r in records:
                f.write(json.dumps(dict(r, ms=(r["end"] - r["start"]) * 1000)) + "\n")
