"""Ten asyncio request handlers parked at a known point, for swprof's asyncio tests.

Each handler awaits asyncio.sleep first (reading its request), then goes down a chain of helper
coroutines to where every handler waits: an Event the test sets by sending SIGUSR1. Then it
computes ~20 ms and finishes. The handlers run under asyncio.gather (two coroutines, one named
task), create_task (a unicode name, a default name), a TaskGroup (3.11+; gather before), wait_for,
a parent task awaiting its child directly through a deep chain of helpers, and an eager task
(3.12+). A sleeper task waits in asyncio.sleep(3600) and is cancelled at the end.

Once every task is parked, the program writes what it sees of itself (the ground truth) as JSON
to --truth: for each task of asyncio.all_tasks() its name, state, thread, its coroutine chain
(outermost first: function, file, line, following cr_await), what the innermost awaits (the
task's _fut_waiter: its type, and its name when it is a task) and the tasks that await it, as
the program built them.

--threads 2 adds a second thread with its own event loop and three handlers, and a task that
keeps that loop busy (running, not suspended) until the release.

    python3 asyncio_handlers.py --truth truth.json [--threads 2]    # then: kill -USR1 PID
"""
import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time

DEEP = 12  # helper coroutines between the child handler and its wait


class Park:
    """Where the handlers of one event loop wait; calls `parked` once all of them are there."""

    def __init__(self, expected, parked):
        self.expected, self.arrived, self.parked = expected, 0, parked
        self.release = asyncio.Event()

    async def wait(self):
        self.arrived += 1
        if self.arrived == self.expected:
            asyncio.get_running_loop().call_soon(self.parked)
        await self.release.wait()


def compute(seconds):
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


async def backend(park):
    await park.wait()


async def fetch(park):
    return await backend(park)


async def deep(n, park):
    if n == 0:
        return await fetch(park)
    return await deep(n - 1, park)


async def handle(i, park, depth=0):
    await asyncio.sleep(0.001 * (i + 1))
    if depth:
        await deep(depth, park)
    else:
        await fetch(park)
    compute(0.02)
    await asyncio.sleep(0.001)
    return i


async def parent(park):
    # Awaits its child task directly; the child goes through DEEP helpers.
    return await asyncio.create_task(handle(8, park, DEEP), name="子任务-8 🙂")


async def group(park):
    if sys.version_info >= (3, 11):
        async with asyncio.TaskGroup() as tg:
            tg.create_task(handle(5, park), name="group-5")
            tg.create_task(handle(6, park), name="group-6")
    else:
        await asyncio.gather(asyncio.create_task(handle(5, park), name="group-5"),
                             asyncio.create_task(handle(6, park), name="group-6"))


def qualname(code):
    return code.co_qualname if sys.version_info >= (3, 11) else code.co_name


def chain(task):
    """The task's coroutines, outermost first, as `task.get_stack()` would follow them."""
    frames, coro = [], task.get_coro()
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append({"function": qualname(frame.f_code), "file": frame.f_code.co_filename,
                       "line": frame.f_lineno})
        coro = getattr(coro, "cr_await", None) if hasattr(coro, "cr_await") else getattr(coro, "gi_yieldfrom", None)
    return frames


def describe(task, thread, awaited_by, running):
    waiter = task._fut_waiter
    awaiting = None
    if waiter is not None:
        awaiting = {"type": type(waiter).__name__,
                    "task": waiter.get_name() if isinstance(waiter, asyncio.Task) else None}
    state = "cancelled" if task.cancelled() else "finished" if task.done() else "pending"
    return {"name": task.get_name(), "state": state, "running": running, "thread_id": thread.ident,
            "native_id": thread.native_id, "frames": chain(task), "awaiting": awaiting,
            "awaited_by": sorted(awaited_by.get(task.get_name(), []))}


class World:
    def __init__(self, args):
        self.args = args
        self.loops = {}          # thread -> (loop, awaited_by: {task name: [awaiter names]}, running names)
        self.pending = 1 + (args.threads == 2)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.releases = {}       # loop -> the Event its handlers wait for

    def loop_parked(self, thread, loop, awaited_by, running=()):
        with self.lock:
            self.loops[thread] = (loop, awaited_by, set(running))
            self.pending -= 1
            done = self.pending == 0
        if done:
            self.main_loop.call_soon_threadsafe(self.write_truth)

    def write_truth(self):
        tasks = []
        for thread, (loop, awaited_by, running) in self.loops.items():
            for task in asyncio.all_tasks(loop):
                tasks.append(describe(task, thread, awaited_by, task.get_name() in running))
        tmp = self.args.truth + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), "deep": DEEP, "tasks": tasks}, f, ensure_ascii=False, indent=1)
        os.replace(tmp, self.args.truth)

    def release(self):
        self.stop.set()
        for loop, _, _ in self.loops.values():
            loop.call_soon_threadsafe(self.releases[loop].set)


async def main_loop_tasks(world):
    loop = asyncio.get_running_loop()
    world.main_loop = loop
    me = asyncio.current_task().get_name()
    awaited_by = {}  # task name -> the names of the tasks that wait for it, as built below
    coro7 = None

    def parked():
        # Up to 3.11 wait_for() runs its coroutine in a task of its own, which waiter-7 waits for.
        for t in asyncio.all_tasks(loop):
            if t.get_coro() is coro7:
                awaited_by[t.get_name()] = ["waiter-7"]
        world.loop_parked(threading.current_thread(), loop, awaited_by)

    park = Park(10, parked)
    world.releases[loop] = park.release
    loop.add_signal_handler(signal.SIGUSR1, world.release)

    named = asyncio.create_task(handle(2, park), name="gather-2")
    created = asyncio.create_task(handle(3, park), name="créer-tâche-3 ✓")
    default = asyncio.create_task(handle(4, park))
    grouped = asyncio.create_task(group(park), name="group")
    awaited_by["group-5"] = awaited_by["group-6"] = ["group"]
    coro7 = handle(7, park)
    waiter = asyncio.create_task(asyncio.wait_for(coro7, 600), name="waiter-7")
    dad = asyncio.create_task(parent(park), name="parent")
    awaited_by["子任务-8 🙂"] = ["parent"]
    sleeper = asyncio.create_task(asyncio.sleep(3600), name="sleeper")
    if sys.version_info >= (3, 12):
        loop.set_task_factory(asyncio.eager_task_factory)  # runs until its first await right here
    ninth = asyncio.create_task(handle(9, park), name="handler-9")
    loop.set_task_factory(None)
    gathered = asyncio.gather(handle(0, park), handle(1, park), named)
    for child in gathered._children:
        awaited_by[child.get_name()] = [me]

    await gathered
    for t in (created, default, grouped, waiter, dad, ninth):
        await t
    sleeper.cancel()


def second_thread(world):
    async def run():
        loop = asyncio.get_running_loop()
        awaited_by = {}

        def parked():
            asyncio.create_task(spin(), name="spinner")

        async def spin():
            # Keeps this loop busy: its coroutine is running, on this thread's stack, at the read.
            world.loop_parked(threading.current_thread(), loop, awaited_by, running=["spinner"])
            while not world.stop.is_set():
                pass

        park = Park(3, parked)
        world.releases[loop] = park.release
        tasks = [asyncio.create_task(handle(10 + i, park), name="thread2-%d" % i) for i in range(3)]
        for t in tasks:
            awaited_by[t.get_name()] = [asyncio.current_task().get_name()]
        await asyncio.gather(*tasks)
    asyncio.run(run())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", required=True)
    parser.add_argument("--threads", type=int, choices=(1, 2), default=1)
    args = parser.parse_args()
    world = World(args)
    thread = None
    if args.threads == 2:
        thread = threading.Thread(target=second_thread, args=(world,), name="second-loop")
        thread.start()
    asyncio.run(main_loop_tasks(world))
    if thread:
        thread.join()


if __name__ == "__main__":
    main()
