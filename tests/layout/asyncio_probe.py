"""Finds, in the interpreter running it, the offsets of the asyncio fields swprof reads that no
header declares (TaskObj and friends live in Modules/_asynciomodule.c, functools.partial in
Modules/_functoolsmodule.c), and prints them in offsets_probe.c's "name value" format for
check_layout.py. Each offset is found by identity, not assumed: an object is given a field whose
value we know (a loop, a coroutine, a name...), and the one offset holding it is the answer.
"""
import asyncio
import ctypes
import functools
import struct
import sys

PTR = 8


def words(obj, size):
    raw = ctypes.string_at(id(obj), size)
    return {off: struct.unpack_from("<Q", raw, off)[0] for off in range(16, size - PTR + 1, PTR)}


def only(name, offsets):
    offsets = sorted(set(offsets))
    if len(offsets) != 1:
        print("%-28s ambiguous:%s" % (name, ",".join(map(str, offsets)) or "none"))
    else:
        print("%-28s %d" % (name, offsets[0]))


def pointer_to(obj, size, target, bias=0):
    return [off for off, value in words(obj, size).items() if value == id(target) + bias]


async def nothing():
    pass


async def main():
    loop = asyncio.get_running_loop()
    Task = asyncio.tasks._CTask
    size = Task.__basicsize__
    coro = nothing()
    name = "probe-name-%d" % id(coro)
    task = Task(coro, name=name)
    only("asyncio.task_loop", pointer_to(task, size, loop))
    only("asyncio.task_coro", pointer_to(task, size, coro))
    only("asyncio.task_name", pointer_to(task, size, name))
    print("%-28s %d" % ("asyncio.task_size", size))

    def first(_):
        pass

    def second(_):
        pass

    before = words(task, size)
    task.add_done_callback(first)
    only("asyncio.task_callback0", pointer_to(task, size, first))
    one = words(task, size)
    task.add_done_callback(second)
    two = words(task, size)
    only("asyncio.task_callbacks", [o for o in two if one[o] == 0 and two[o] != 0 and before[o] == 0])
    await task

    # The state: 0 pending, 1 cancelled, 2 finished, the same int in three tasks.
    def ints(t):
        raw = ctypes.string_at(id(t), size)
        return {off: struct.unpack_from("<i", raw, off)[0] for off in range(16, size - 3, 4)}

    gate = loop.create_future()

    async def waits(future=None):
        await (future or gate)

    pending = Task(waits())
    cancelled = Task(waits(loop.create_future()))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    states = ints(pending), ints(cancelled), ints(task)
    only("asyncio.task_state", [o for o in states[0] if (states[0][o], states[1][o], states[2][o]) == (0, 1, 2)])
    only("asyncio.task_fut_waiter", pointer_to(pending, size, gate))

    # What a task awaiting a future leaves in the future's callbacks: the task's wakeup.
    wakeup = gate._callbacks[0][0]
    if type(wakeup).__name__ == "TaskWakeupMethWrapper":
        only("asyncio.wakeup_task", pointer_to(wakeup, type(wakeup).__basicsize__, pending))
    it = gate.__await__()
    only("asyncio.future_iter_future", pointer_to(it, type(it).__basicsize__, gate))
    it.close()
    partial = functools.partial(first, gate)
    only("asyncio.partial_args", pointer_to(partial, type(partial).__basicsize__, partial.args))

    if sys.version_info >= (3, 14):
        # The awaited object's stack slot, counted from the top (_PyGen_yf): find the slot holding
        # cr_await in the suspended coroutine, then the frame's stackpointer just above it.
        async def outer():
            await waits(loop.create_future())

        awaiting = Task(outer())
        await asyncio.sleep(0)
        coro = awaiting.get_coro()
        size = sys.getsizeof(coro)
        slots = [o for o, v in words(coro, size).items() if v & ~3 == id(coro.cr_await)]
        only("asyncio.yield_from_depth", [(v - id(coro) - o) // PTR for o in slots
                                          for v in words(coro, size).values() if 0 < v - id(coro) - o <= 4 * PTR])
        awaiting.cancel()
        size = Task.__basicsize__
        # fut_awaited_by: the awaiting task itself, then a set once two tasks await.
        child = Task(waits(loop.create_future()))

        async def awaits(t):
            await t

        parent = Task(awaits(child))
        await asyncio.sleep(0)
        only("asyncio.task_awaited_by", pointer_to(child, size, parent))
        single = ctypes.string_at(id(child), size)
        other = Task(awaits(child))
        await asyncio.sleep(0)
        both = ctypes.string_at(id(child), size)
        # A flag byte flips 0 -> 1 while the rest of its word stays (a pointer changes wholesale).
        def lone_flip(o):
            word = o - o % PTR
            return single[o] == 0 and both[o] == 1 and all(
                single[i] == both[i] for i in range(word, word + PTR) if i != o)
        only("asyncio.task_awaited_by_is_set", [o for o in range(16, size) if lone_flip(o)])
        # task_node: the tasks of a thread form a list, each pointing at the next task's node.
        first_task, second_task = Task(waits(loop.create_future())), Task(waits(loop.create_future()))
        only("asyncio.task_node", [o for o, v in words(first_task, size).items() if v == id(second_task) + o])
        for t in (child, parent, other, first_task, second_task):
            t.cancel()
    pending.cancel()
    gate.cancel()
    await asyncio.sleep(0)


asyncio.run(main())
