"""Known stacks: each thread parks in time.sleep at a known line, reached through one kind of
Python frame: a nested closure, a class method, a generator, a coroutine driven by asyncio, a
thread pool worker, a 200-deep recursion, and a function with a non-ASCII name in a file with a
non-ASCII name. The end-to-end tests read the `# @leaf NAME` and `# @call NAME` markers to know the
exact line of every frame.

    python3 samples/known_stacks.py --seconds 2
"""
import argparse
import asyncio
import concurrent.futures
import importlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
unicode_module = importlib.import_module("unicodé_💥")

SECONDS = 2.0


def outer():
    def inner():
        time.sleep(SECONDS)  # @leaf nested

    inner()  # @call nested


class Worker:
    def run(self):
        self._step()  # @call method

    def _step(self):
        time.sleep(SECONDS)  # @leaf method


def producer():
    time.sleep(SECONDS)  # @leaf generator
    yield 1


def consume():
    for _ in producer():  # @call generator
        pass


async def handler():
    time.sleep(SECONDS)  # @leaf coroutine


async def serve():
    await handler()  # @call coroutine


def run_coroutine():
    asyncio.run(serve())  # @call coroutine-run


def pooled_task():
    time.sleep(SECONDS)  # @leaf pool


def run_pool():
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="pool") as pool:
        pool.submit(pooled_task).result()  # @call pool-submit


def recurse(depth):
    if depth <= 1:
        time.sleep(SECONDS)  # @leaf recursion
        return
    recurse(depth - 1)  # @call recursion


def run_unicode():
    unicode_module.функция(SECONDS)  # @call unicode


SCENARIOS = {
    "nested": outer,
    "method": lambda: Worker().run(),
    "generator": consume,
    "coroutine": run_coroutine,
    "pool": run_pool,
    "recursion": lambda: recurse(200),
    "unicode": run_unicode,
}


def main():
    global SECONDS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    SECONDS = parser.parse_args().seconds
    threads = [threading.Thread(target=fn, name=name) for name, fn in SCENARIOS.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
