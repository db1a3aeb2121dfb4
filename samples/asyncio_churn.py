"""asyncio tasks created and finished all the time, on two event loops (two threads), for the
tests that read tasks while they change: each task awaits through a helper coroutine a few times,
computes a little and finishes, and new ones replace it, so task objects, coroutines and futures
are freed and their memory reused while a reader walks them. Prints its pid, then runs for
--seconds.

    python3 asyncio_churn.py --seconds 3 [--alive 50]
"""
import argparse
import asyncio
import os
import sys
import threading
import time


async def step(n):
    await asyncio.sleep(0)
    return n + 1


async def churn_task(rounds):
    n = 0
    for _ in range(rounds):
        n = await step(n)
        sum(range(200))
    return n


async def churn(seconds, alive, prefix):
    deadline = time.monotonic() + seconds
    running, serial = set(), 0
    while time.monotonic() < deadline:
        while len(running) < alive:
            serial += 1
            task = asyncio.create_task(churn_task(1 + serial % 5), name="%s-%d" % (prefix, serial))
            running.add(task)
            task.add_done_callback(running.discard)
        await asyncio.sleep(0)
    await asyncio.gather(*running)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--alive", type=int, default=50)
    args = parser.parse_args()
    other = threading.Thread(target=lambda: asyncio.run(churn(args.seconds, args.alive, "other")))
    other.start()
    print(os.getpid(), flush=True)
    asyncio.run(churn(args.seconds, args.alive, "churn"))
    other.join()
    sys.exit(0)


if __name__ == "__main__":
    main()
