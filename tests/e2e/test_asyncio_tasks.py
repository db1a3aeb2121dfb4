"""asyncio tasks read from outside (python::AsyncioReader, printed by tests/tools/asyncio_tasks)
against the program's own view of itself. samples/asyncio_handlers.py parks ten handlers (gather,
create_task, TaskGroup, wait_for, a parent awaiting its child through a deep chain, an eager task)
and writes its ground truth; every task must be found with the same name (unicode ones too),
state, thread, await chain (function, file and line of every coroutine), innermost awaitable and
awaiting tasks, and nothing may be torn. Then the program is released and must finish normally.
The second scenario adds a thread with its own loop, kept busy by a running task. The third reads
tasks over and over while two loops create and finish them all the time; the last, a program that
imports asyncio only after the reader started."""
import json
import os
import signal
import subprocess
import time

import harness
from harness import expect

SAMPLE = os.path.join(harness.SAMPLES, "asyncio_handlers.py")
CHURN = os.path.join(harness.SAMPLES, "asyncio_churn.py")


def compare(truth, found):
    by_name = {t["name"]: t for t in found["tasks"]}
    names = {t["address"]: t["name"] for t in found["tasks"]}
    expect(sorted(by_name) == sorted(t["name"] for t in truth["tasks"]) and len(by_name) == len(found["tasks"]),
           "tasks found %s, the program has %s" % (sorted(by_name), sorted(t["name"] for t in truth["tasks"])))
    for want in truth["tasks"]:
        name = want["name"]
        got = by_name[name]
        for key in ("state", "running", "thread_id", "native_id"):
            expect(got[key] == want[key], "%s: %s %r, the program says %r" % (name, key, got[key], want[key]))
        frames = list(reversed(want["frames"]))  # the tool lists the innermost first
        if want["running"]:
            # Its frames move while we read: what is known is the coroutine that runs.
            expect([f["function"] for f in got["frames"]] == [f["function"] for f in frames],
                   "%s (running): frames %s, the program says %s" % (name, got["frames"], frames))
        else:
            expect(got["frames"] == frames, "%s: await chain\n  %s\nthe program says\n  %s" % (
                name, "\n  ".join(map(str, got["frames"])), "\n  ".join(map(str, frames))))
        if want["awaiting"]:
            awaited = got["awaiting"] or {}
            expect(awaited.get("type") == want["awaiting"]["type"],
                   "%s awaits %s, the program says %s" % (name, got["awaiting"], want["awaiting"]))
            expect(names.get(awaited.get("task")) == want["awaiting"]["task"],
                   "%s awaits task %s, the program says %s" % (name, names.get(awaited.get("task")),
                                                               want["awaiting"]["task"]))
        got_by = sorted(names.get(a, a) for a in got["awaited_by"])
        expect(got_by == want["awaited_by"], "%s awaited by %s, the program says %s" % (name, got_by, want["awaited_by"]))
    deepest = max(len(t["frames"]) for t in found["tasks"])
    expect(deepest >= truth["deep"] + 5, "the deep chain has %d frames" % deepest)
    stats = found["stats"]
    expect(stats["torn"] == 0 and stats["truncated"] == 0, "nothing torn or cut in a parked program: %s" % stats)
    print("ok: %d tasks, chains up to %d coroutines, registry: %s; offsets: %s; %d reads" % (
        len(found["tasks"]), deepest, found["registry"], found["offsets"], stats["reads"]))


def scenario(ctx, threads):
    truth_path = ctx.path("truth-%d.json" % threads)
    program = subprocess.Popen([ctx.python, SAMPLE, "--truth", truth_path, "--threads", str(threads)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_for_file(truth_path, 60)
        with open(truth_path, encoding="utf-8") as f:
            truth = json.load(f)
        tool = subprocess.run([ctx.args.tool, str(program.pid)], capture_output=True, text=True, timeout=60)
        expect(tool.returncode == 0, "asyncio_tasks failed (%d): %s" % (tool.returncode, tool.stderr))
        found = json.loads(tool.stdout)
        with open(ctx.path("found-%d.json" % threads), "w", encoding="utf-8") as f:
            f.write(tool.stdout)
        compare(truth, found)
        if threads == 1:
            # A chain longer than the reader's limit keeps its outermost coroutines, and says so.
            cut = subprocess.run([ctx.args.tool, str(program.pid), "--max-depth", "5"], capture_output=True, text=True,
                                 timeout=60)
            cut = json.loads(cut.stdout)
            longest = max(truth["tasks"], key=lambda t: len(t["frames"]))
            got = [t for t in cut["tasks"] if t["name"] == longest["name"]][0]
            expect(got["frames"] == list(reversed(longest["frames"][:5])) and cut["stats"]["truncated"] >= 1,
                   "with --max-depth 5, %s keeps its 5 outermost coroutines: %s" % (longest["name"], got["frames"]))
        program.send_signal(signal.SIGUSR1)
        out, err = program.communicate(timeout=60)
        expect(program.returncode == 0, "the program, released, exits %d: %s" % (program.returncode, err))
    finally:
        harness.kill_quietly(program)
        program.wait()


def churn(ctx):
    """Tasks created and finished all the time, on two loops: a reader that scans them over and
    over never fails, never reports a task without a name or a frame that does not resolve, and
    only ever reports the program's own coroutines and asyncio's."""
    program = subprocess.Popen([ctx.python, CHURN, "--seconds", "4"], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(program.stdout.readline())
        time.sleep(0.3)  # asyncio imported, both loops turning
        tool = subprocess.run([ctx.args.tool, str(pid), "--repeat", "150"], capture_output=True, text=True, timeout=120)
        expect(tool.returncode == 0, "asyncio_tasks failed (%d): %s" % (tool.returncode, tool.stderr))
        found = json.loads(tool.stdout)
        all_scans = found["all_scans"]
        expect(all_scans["tasks"] > 150, "tasks seen while they churn: %s" % all_scans)
        expect(all_scans["unnamed"] == 0 and all_scans["unresolved_frames"] == 0,
               "every task read while they churn is whole: %s" % all_scans)
        expected = {"step", "churn_task", "churn", "sleep", "__sleep0"}
        unexpected = [f for f in all_scans["functions"] if f.rsplit(".", 1)[-1] not in expected]
        expect(not unexpected, "only the program's coroutines and asyncio's: %s" % unexpected)
        print("ok: %d tasks read over 150 scans while they churn; %d torn (retried, then skipped), %d invalid "
              "entries skipped" % (all_scans["tasks"], all_scans["torn"], all_scans["invalid"]))
        expect(program.wait(timeout=60) == 0, "the churning program exits normally")
    finally:
        harness.kill_quietly(program)
        program.wait()


LATE = r"""
import os, signal, sys, time
print(os.getpid(), flush=True)
go = []
signal.signal(signal.SIGUSR1, lambda *_: go.append(1))
while not go:
    time.sleep(0.01)
import asyncio
async def main():
    await asyncio.create_task(asyncio.sleep(60), name="late")
asyncio.run(main())
"""


def late_import(ctx):
    """A program that imports asyncio after the reader started: nothing to read at first (one
    clear reason), then its tasks, found by the same reader."""
    program = subprocess.Popen([ctx.python, "-c", LATE], stdout=subprocess.PIPE, text=True)
    try:
        pid = program.stdout.readline().strip()
        before = subprocess.run([ctx.args.tool, pid], capture_output=True, text=True, timeout=60)
        expect(before.returncode != 0 and "asyncio is not" in before.stderr,
               "before asyncio is imported: %d %r" % (before.returncode, before.stderr))
        waiting = subprocess.Popen([ctx.args.tool, pid, "--wait", "30"], stdout=subprocess.PIPE, text=True)
        time.sleep(0.5)
        program.send_signal(signal.SIGUSR1)
        found = json.loads(waiting.communicate(timeout=60)[0])
        names = [t["name"] for t in found["tasks"]]
        # The first scan that finds anything may come before the main task created "late".
        expect(names and set(names) <= {"late", "Task-1"} and found["scans_before_found"] > 0,
               "the same reader finds the tasks once asyncio is imported: %s after %d scans" % (
                   names, found["scans_before_found"]))
        print("ok: asyncio imported late: '%s' first, then %s" % (before.stderr.strip(), names))
    finally:
        harness.kill_quietly(program)
        program.wait()


def test(ctx):
    scenario(ctx, 1)
    scenario(ctx, 2)
    churn(ctx)
    late_import(ctx)


if __name__ == "__main__":
    harness.main(test, __doc__, [(["--tool"], {"required": True})])
