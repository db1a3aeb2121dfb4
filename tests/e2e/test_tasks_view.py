"""The whole-program view of asyncio tasks: `record --tasks` (no --entry) samples every suspended
task each tick where it awaits, and `analyze --by-task` puts each task at the root, named after the
task, holding its own time only: its awaiting under `<awaiting TYPE>`, its CPU where it ran. Ten
handlers (samples/async_requests.py --how create_task: tasks named request-N) each await three
50 ms sleeps and then spin 20 ms; each task's time is what its handler measured, within what
sampling allows."""
import json

import harness
from harness import expect, expect_close

COUNT = 10


def test(ctx):
    out, report = ctx.path("tasks.swp"), ctx.path("tasks.jsonl")
    ctx.record(out, [ctx.python, harness.SAMPLES + "/async_requests.py", "--how", "create_task", "--report", report],
               options=["--tasks"])
    handled = {"request-%d" % json.loads(l)["job"]: json.loads(l)["ms"] for l in open(report)}
    doc = ctx.analyze_json(out, "--by-task")
    rec = doc["recording"]
    # A task's time is off by up to a sample's weight at each end; more when the recorder was late.
    tolerance = 2 * max(rec["interval_ms"], rec["weight_max_ms"]) + 1
    roots = {r["function"].split(" (thread")[0]: r for r in doc["roots"]}
    threads = [name for name in roots if name.startswith("thread ")]
    expect(len(threads) == 1, "one root for the thread's own stack (its event loop), got %s" % threads)
    unseen_total = 0.0
    for name, measured in sorted(handled.items()):
        root = roots.get("task " + name)
        expect(root is not None, "task %s is a root: %s" % (name, sorted(roots)))
        # (and time the recorder was held up for, under the frames known to have been there)
        own = [c["function"] for c in root["children"] if c["function"] != "<not sampled>"]
        expect(own == ["handle"], "task %s holds handle only: %s" % (name, own))
        expect_close(root["total_ms"], measured, tolerance, "task %s's time vs its handler's clock" % name)
        waiting = sum(n["total_ms"] for n in harness.all_nodes([root]) if n["function"].startswith("<awaiting"))
        # (Less what a held-up recorder did not see: a task first seen after a stall, or seen
        # awaiting something else, may have run in it; that time is `<not sampled>`.)
        unseen = sum(n["total_ms"] for n in harness.all_nodes([root]) if n["function"] == "<not sampled>")
        unseen_total += unseen
        expect(waiting >= 150 - 2 * rec["interval_ms"] - unseen,
               "task %s awaits %.1f ms (three 50 ms sleeps; %.1f ms not sampled)" % (name, waiting, unseen))
        # The spin is the task's only CPU (a busy machine gives it less, never more).
        expect(root["cpu_ms"] <= 20 + 2 * rec["interval_ms"] + 5, "task %s used %.1f ms of CPU" % (name, root["cpu_ms"]))
    # Waiting is not CPU: the tasks' awaiting shows as off-CPU time.
    offcpu = ctx.analyze_json(out, "--by-task", "--mode", "offcpu")
    waits = sum(n["total_ms"] for n in harness.all_nodes(offcpu["roots"]) if n["function"].startswith("<awaiting"))
    expect(waits >= COUNT * (150 - 2 * rec["interval_ms"]) - unseen_total, "off-CPU: %.1f ms of awaiting in all" % waits)
    print("ok: %d tasks at the root, each its handler's time (tolerance %.1f ms), waiting under <awaiting ...>"
          % (len(handled), tolerance))


if __name__ == "__main__":
    harness.main(test, __doc__)
