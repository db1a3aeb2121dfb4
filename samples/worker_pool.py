"""A multiprocessing pool that computes in its workers, then a Python subprocess and a shell, for
`record --subprocesses` and its tests:

    python3 samples/worker_pool.py --method fork|spawn|forkserver --report out.json

Each of the 3 workers says when it started (time.monotonic(), the clock swprof's samples use) and
spins in `work` for 0.4 s per task (6 tasks); then a Python child spins 0.4 s in `child_work`, and
`sh -c "sleep 0.3"` runs. The report (JSON) lists every worker's pid, start and tasks, and the
children's pids.
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

TASK_SECONDS = 0.4
CHILD = """
import os, sys, time
def child_work():
    end = time.monotonic() + %s
    while time.monotonic() < end:
        pass
print(os.getpid(), flush=True)
child_work()
""" % TASK_SECONDS


def started(queue):
    queue.put((os.getpid(), time.monotonic()))


def work(_):
    end = time.monotonic() + TASK_SECONDS
    while time.monotonic() < end:
        pass
    return os.getpid()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="fork")
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    ctx = multiprocessing.get_context(args.method)
    queue = ctx.Queue()
    with ctx.Pool(3, initializer=started, initargs=(queue,)) as pool:
        done = pool.map(work, range(6), chunksize=1)
    starts = dict(queue.get(timeout=30) for _ in range(3))
    workers = [{"pid": pid, "start": starts.get(pid), "tasks": done.count(pid)} for pid in sorted(set(done) | set(starts))]
    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True)
    shell = subprocess.Popen(["sh", "-c", "sleep 0.3; true"])
    shell.wait()
    with open(args.report, "w") as f:
        json.dump({"parent": os.getpid(), "workers": workers, "child": int(child.stdout.split()[0]), "shell": shell.pid,
                   "task_seconds": TASK_SECONDS}, f)


if __name__ == "__main__":
    main()
