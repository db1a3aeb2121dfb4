"""The cost of reading every asyncio task of a process from outside (python::AsyncioReader): for
10, 100 and 1000 parked tasks (each awaiting through three helper coroutines, the shape of a
request handler waiting on a backend), the median wall and CPU time of a full scan, per task, and
the process_vm_readv calls it makes: a full scan with the awaiter links, one without, and a
refresh (re-reading the tasks found before, AsyncioReader::read). Not part of ctest: run it on a
quiet machine (the CPU time is the steadier figure on a busy one).

    python3 tests/bench/asyncio_bench.py --tool build/tests/swprof_asyncio_tasks [--python pyenv-3.12 ...]
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

PROGRAM = r'''
import asyncio, os, sys

async def backend(event):
    await event.wait()

async def fetch(event):
    return await backend(event)

async def handle(event):
    await asyncio.sleep(0)
    return await fetch(event)

async def main(n, ready):
    event = asyncio.Event()
    tasks = [asyncio.create_task(handle(event), name="handler-%d" % i) for i in range(n)]
    await asyncio.sleep(0.2)
    open(ready, "w").write(str(os.getpid()))
    await event.wait()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
'''


def measure(tool, python, n, tmp, repeat):
    ready = os.path.join(tmp, "ready")
    script = os.path.join(tmp, "parked.py")
    with open(script, "w") as f:
        f.write(PROGRAM)
    if os.path.exists(ready):
        os.unlink(ready)
    program = subprocess.Popen([python, script, str(n), ready])
    try:
        harness.wait_for_file(ready, 60)
        rows = []
        for label, options in (("scan", []), ("no awaiters", ["--no-awaiters"]), ("refresh", ["--refresh"])):
            out = subprocess.run([tool, str(program.pid), "--repeat", str(repeat)] + options, capture_output=True,
                                 text=True, timeout=300, check=True)
            doc = json.loads(out.stdout)
            found = len(doc["tasks"])
            # The first scan also learns the types (and, with --refresh, walks the registry).
            wall = statistics.median(doc["scan_us"][1:] or doc["scan_us"])
            cpu = statistics.median(doc["cpu_us"][1:] or doc["cpu_us"])
            reads = statistics.median(doc["reads_per_scan"][1:] or doc["reads_per_scan"])
            rows.append((label, found, wall, cpu, cpu / max(1, found), reads, doc["stats"]["torn"]))
        return rows
    finally:
        program.send_signal(signal.SIGKILL)
        program.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--python", action="append")
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="swprof-asyncio-bench-")
    print("%-12s %6s %-12s %6s %9s %9s %9s %7s %5s" % ("python", "tasks", "mode", "found", "wall µs", "CPU µs",
                                                     "CPU µs/t", "reads", "torn"))
    for name in args.python or harness.ALL_PYTHONS:
        python, _ = harness.resolve_python(name)
        if not python:
            print("skip %s: not installed" % name)
            continue
        for n in (10, 100, 1000):
            for label, found, wall, cpu, per_task, reads, torn in measure(args.tool, python, n, tmp, args.repeat):
                print("%-12s %6d %-12s %6d %9.0f %9.0f %9.2f %7.0f %5d" % (name, n, label, found, wall, cpu, per_task,
                                                                          reads, torn))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
