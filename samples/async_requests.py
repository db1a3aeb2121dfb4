"""Requests that wait before they compute, as asyncio handlers do: each `handle` awaits a
"database call" (asyncio.sleep) three times, then spins. Ten run at once on one event loop,
started the way real code starts them (--how gather, create_task, taskgroup or wait_for), and
each reports its own duration. With --busy-ms N the coroutine that starts them computes N ms
before it awaits them (a loop busy with other work): the handlers' tasks wait that long to start.
With --loop-late-ms N the loop's first task is made N ms before the loop runs (asyncio.run makes
it just before the loop starts; a program that makes its tasks first, then runs the loop, longer).

    python3 samples/async_requests.py --how gather --report /tmp/handlers.jsonl
"""
import argparse
import asyncio
import json
import time

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


async def query(i):
    await asyncio.sleep(WAIT_S)


async def handle(i):
    started = time.monotonic()
    for _ in range(WAITS):
        await query(i)
    spin(SPIN_S)
    records.append({"job": i, "start": started, "end": time.monotonic()})


async def main(how, count, busy_s=0.0):
    if how == "gather":
        pending = asyncio.gather(*(handle(i) for i in range(count)))
        spin(busy_s)
        await pending
    elif how == "create_task":
        tasks = [asyncio.create_task(handle(i), name="request-%d" % i) for i in range(count)]
        spin(busy_s)
        for t in tasks:
            await t
    elif how == "taskgroup":
        async with asyncio.TaskGroup() as group:
            for i in range(count):
                group.create_task(handle(i))
            spin(busy_s)
    elif how == "wait_for":
        pending = asyncio.gather(*(asyncio.wait_for(handle(i), timeout=30) for i in range(count)))
        spin(busy_s)
        await pending


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--how", default="gather", choices=["gather", "create_task", "taskgroup", "wait_for"])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--busy-ms", type=float, default=0.0)
    parser.add_argument("--loop-late-ms", type=float, default=0.0)
    parser.add_argument("--report")
    args = parser.parse_args()
    for _ in range(args.rounds):
        if args.loop_late_ms:
            loop = asyncio.new_event_loop()
            first = loop.create_task(main(args.how, args.count, args.busy_ms / 1000.0))
            spin(args.loop_late_ms / 1000.0)
            loop.run_until_complete(first)
            loop.close()
        else:
            asyncio.run(main(args.how, args.count, args.busy_ms / 1000.0))
    if args.report:
        with open(args.report, "w") as f:
            for r in records:
                f.write(json.dumps(dict(r, ms=(r["end"] - r["start"]) * 1000)) + "\n")
