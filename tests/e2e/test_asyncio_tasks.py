"""asyncio tasks read from outside (python::AsyncioReader, printed by tests/tools/asyncio_tasks)
against the program's own view of itself. samples/asyncio_handlers.py parks ten handlers (gather,
create_task, TaskGroup, wait_for, a parent awaiting its child through a deep chain, an eager task)
and writes its ground truth; every task must be found with the same name (unicode ones too),
state, thread, await chain (function, file and line of every coroutine), innermost awaitable and
awaiting tasks, and nothing may be torn. Then the program is released and must finish normally.
The second scenario adds a thread with its own loop, kept busy by a running task."""
import json
import os
import signal
import subprocess

import harness
from harness import expect

SAMPLE = os.path.join(harness.SAMPLES, "asyncio_handlers.py")


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
        program.send_signal(signal.SIGUSR1)
        out, err = program.communicate(timeout=60)
        expect(program.returncode == 0, "the program, released, exits %d: %s" % (program.returncode, err))
    finally:
        harness.kill_quietly(program)
        program.wait()


def test(ctx):
    scenario(ctx, 1)
    scenario(ctx, 2)


if __name__ == "__main__":
    harness.main(test, __doc__, [(["--tool"], {"required": True})])
