"""Where the time goes: a function spinning 1.5 s and one sleeping 1.5 s. In wall time
each gets what the program measured it took, and the spinner its measured CPU time; the sleeper
is off-CPU nearly all its time, its off-CPU time is its whole sleep under `<off-CPU: clock_nanosleep>`
(pselect6 before 3.11), and the spinner's off-CPU time is its wall time less its CPU time, all of
it `<waiting for a CPU>` (on a busy machine a spinner waits in the run queue; it never blocks).
The GIL: a pure-Python spinner holds it in >= 90 % of its samples, a thread in time.sleep and zlib
(a C call that releases it) in <= 10 % (on a busy machine, plus the time it waits for a CPU, as it
may while holding it); record --gil keeps only the holder's samples; --no-idle drops samples of
threads asleep for a whole interval. Tolerances come from the recording's own sample weights."""
import json
import os

import harness
from harness import expect, expect_close, find_path


def node(doc, name, version):
    path = find_path(doc["roots"], ["main", name], version)
    expect(path, "%s found" % name)
    return path[-1]


def share(doc, name, version):
    """name's share of main's time: the experiment itself, not interpreter startup (which on a
    build without compiled bytecode spends a few hundred ms of CPU compiling the stdlib)."""
    path = find_path(doc["roots"], ["main", name], version)
    expect(path, "%s found" % name)
    return 100.0 * path[-1]["total_ms"] / path[-2]["total_ms"]


def sum_kind(node, kind):
    """The time of every node of `kind` under `node`."""
    return sum(c["total_ms"] if c["kind"] == kind else sum_kind(c, kind) for c in node.get("children", []))


def thread_root(doc, name):
    roots = [r for r in doc["roots"] if r["function"].endswith("(%s)" % name)]
    expect(len(roots) == 1, "thread %s among %s" % (name, [r["function"] for r in doc["roots"]]))
    return roots[0]


def test(ctx):
    out, measured_path = ctx.path("cpu.swp"), ctx.path("measured.json")
    # One long spin and one long nap: few switches between them, each of which a busy machine's
    # late samples can blur by up to a sample's weight.
    rounds = 1
    ctx.record(out, [ctx.python, os.path.join(harness.SAMPLES, "cpu_vs_sleep.py"), "--rounds", str(rounds),
                     "--phase", "1.5", "--report", measured_path])
    measured = json.load(open(measured_path))
    wall = ctx.analyze_json(out, "--mode", "wall")
    cpu = ctx.analyze_json(out, "--mode", "cpu")
    off = ctx.analyze_json(out, "--mode", "offcpu")
    # Switches: into spin, spin to nap, nap back to main.
    tolerance = harness.sampling_tolerance(wall, 2 * rounds + 1, competes_for_cpu=True)
    for name in ("spin", "nap"):
        expect_close(node(wall, name, ctx.version)["total_ms"], measured[name + "_ms"], tolerance, "wall: %s ms" % name)
    # The spinner's CPU time is what the program measured it used (thread_time), give or take the
    # CPU of the samples that cross a switch (at most their weight each). Not a share of main's:
    # main also parses its arguments, and 3.14's argparse imports _colorize, dataclasses and
    # inspect there (150 ms of CPU beside two busy loops).
    spin_cpu = node(cpu, "spin", ctx.version)["total_ms"]
    expect_close(spin_cpu, measured["spin_cpu_ms"], tolerance, "cpu: spin ms")
    nap, spin = node(wall, "nap", ctx.version), node(wall, "spin", ctx.version)
    expect(nap["cpu_ms"] <= 0.1 * nap["wall_ms"], "nap is off-CPU nearly all its time: %.1f of %.1f ms on CPU"
           % (nap["cpu_ms"], nap["wall_ms"]))
    # Off-CPU: the sleeper's is its whole sleep, under the call it sleeps in; the spinner's is its
    # wall less its CPU time, and all of it (on a busy machine, much) is waiting for a CPU: it
    # never blocks.
    nap_node, spin_node = node(off, "nap", ctx.version), node(off, "spin", ctx.version)
    nap_off, spin_off = nap_node["total_ms"], spin_node["total_ms"]
    expect_close(nap_off, measured["nap_ms"], tolerance, "offcpu: nap ms")
    # (CPU time comes in scheduler ticks and can exceed the wall time by a little: off-CPU totals
    # are floored at zero.)
    expect(abs(spin_off - max(0.0, spin["wall_ms"] - spin["cpu_ms"])) < 0.01,
           "spin's off-CPU time is its wall - CPU: %.2f vs %.2f - %.2f" % (spin_off, spin["wall_ms"], spin["cpu_ms"]))
    sleep_call = "clock_nanosleep" if ctx.version >= (3, 11) else "pselect6"  # time.sleep: select() before 3.11

    def leaf(parent, kind):
        return sum(c["total_ms"] for c in parent.get("children", []) if c["kind"] == kind)
    nap_reason = [c for c in nap_node.get("children", []) if c["kind"] == "offcpu_reason"]
    expect(nap_reason and nap_reason[0]["function"] == "<off-CPU: %s>" % sleep_call,
           "nap sleeps in %s: %s" % (sleep_call, [c["function"] for c in nap_node.get("children", [])]))
    expect_close(nap_reason[0]["total_ms"], measured["nap_ms"], tolerance, "offcpu: nap's <off-CPU: %s> ms" % sleep_call)
    spin_queued = leaf(spin_node, "waiting_for_cpu")
    expect(spin_off - spin_queued <= tolerance, "spin is not blocked: %.1f ms off-CPU of which %.1f waiting for a CPU (± %.0f)"
           % (spin_off, spin_queued, tolerance))
    print("ok: cpu spin %.1f%%; offcpu nap %.0f ms of %.0f measured under %s; spin waited %.0f ms for a CPU, "
          "blocked %.1f ms" % (share(cpu, "spin", ctx.version), nap_off, measured["nap_ms"], nap_reason[0]["function"],
                               spin_queued, spin_off - spin_queued))
    # The text report shows wall and CPU side by side.
    header = [l for l in ctx.run_swprof("analyze", out, "--no-color").stdout.splitlines() if "Call tree" in l][0]
    expect("Wall" in header and "CPU" in header and "GIL" in header, "text columns: %s" % header)

    gil = ctx.path("gil.swp")
    ctx.record(gil, [ctx.python, os.path.join(harness.SAMPLES, "gil_threads.py"), "--seconds", "2"])
    doc = ctx.analyze_json(gil, "--by-thread")
    spinner, sleeper = thread_root(doc, "spinner"), thread_root(doc, "sleeper")
    spin_pct = 100.0 * spinner["gil_ms"] / spinner["wall_ms"]
    sleep_pct = 100.0 * sleeper["gil_ms"] / sleeper["wall_ms"]
    print("ok?: spinner holds the GIL %.1f%%, sleeper %.1f%%" % (spin_pct, sleep_pct))
    # The spinner holds it nearly all the time on a quiet machine; on a busy one it also waits for
    # the sleeper to get a CPU each time it hands the GIL over, so its share is lower, but far above
    # the sleeper's, which only takes it for a few bytecodes between C calls. On a busy machine
    # the sleeper can lose its CPU while it holds the GIL and keep it while it waits for one
    # (CI's load step: 11.4 %): that is bounded by its time waiting for a CPU.
    sleeper_off = thread_root(ctx.analyze_json(gil, "--by-thread", "--mode", "offcpu"), "sleeper")
    queued_pct = 100.0 * sum_kind(sleeper_off, "waiting_for_cpu") / sleeper["wall_ms"]
    print("ok?: the sleeper waited for a CPU %.1f%% of its time" % queued_pct)
    expect(spin_pct >= sleep_pct + 50.0, "the spinner holds the GIL in %.1f%% of its time" % spin_pct)
    expect(sleep_pct <= 10.0 + queued_pct, "the sleeper holds the GIL in %.1f%% of its time (waits for a CPU in %.1f%%)"
           % (sleep_pct, queued_pct))
    # One GIL: at each tick at most one thread holds it, so their GIL times add up to no more than
    # the recording's duration (give or take a weight per thread).
    gil_total = sum(r["gil_ms"] for r in doc["roots"])
    duration = doc["recording"]["duration_ms"]
    expect(gil_total <= duration + len(doc["roots"]) * doc["recording"]["weight_max_ms"],
           "GIL held %.0f ms in all in %.0f ms: more than one holder at a time" % (gil_total, duration))

    only = ctx.path("gil-only.swp")
    proc = ctx.record(only, [ctx.python, os.path.join(harness.SAMPLES, "gil_threads.py"), "--seconds", "1"],
                      options=["--gil"])
    expect("without the GIL (--gil)" in proc.stderr, "the summary counts the samples left out")
    doc = ctx.analyze_json(only, "--by-thread")
    for root in doc["roots"]:
        expect(abs(root["gil_ms"] - root["wall_ms"]) < 0.01, "--gil: every sample of %s holds the GIL" % root["function"])
    # Of the two threads, the spinner is the one that holds the GIL: nearly all their kept samples
    # are its own. (The main thread holds it while the interpreter starts, longer on a busy machine.)
    spinner, sleeper = thread_root(doc, "spinner"), thread_root(doc, "sleeper") if any(
        r["function"].endswith("(sleeper)") for r in doc["roots"]) else {"wall_ms": 0.0}
    expect(spinner["wall_ms"] >= 0.8 * (spinner["wall_ms"] + sleeper["wall_ms"]),
           "--gil keeps the spinner: %.0f ms, the sleeper %.0f ms" % (spinner["wall_ms"], sleeper["wall_ms"]))

    idle, measured_path = ctx.path("no-idle.swp"), ctx.path("measured-idle.json")
    proc = ctx.record(idle, [ctx.python, os.path.join(harness.SAMPLES, "cpu_vs_sleep.py"), "--rounds", "3",
                             "--report", measured_path], options=["--no-idle"])
    measured = json.load(open(measured_path))
    expect("asleep for a whole interval (--no-idle)" in proc.stderr, "the summary counts idle samples")
    doc = ctx.analyze_json(idle)
    nap = find_path(doc["roots"], ["main", "nap"], ctx.version)
    spin = find_path(doc["roots"], ["main", "spin"], ctx.version)
    tolerance = harness.sampling_tolerance(doc, 2 * 3, competes_for_cpu=True)
    expect(spin and spin[-1]["total_ms"] > measured["spin_ms"] - tolerance,
           "--no-idle keeps the spinning samples: %.0f of %.0f ms" % (spin and spin[-1]["total_ms"], measured["spin_ms"]))
    # Kept: the samples around falling asleep and waking up (longer on a busy machine, where a woken
    # thread waits for a CPU); dropped: the rest of each 300 ms sleep.
    expect(not nap or nap[-1]["total_ms"] < 0.25 * measured["nap_ms"],
           "--no-idle drops the sleeping ones: %.0f of %.0f ms kept" % (nap and nap[-1]["total_ms"], measured["nap_ms"]))


if __name__ == "__main__":
    harness.main(test, __doc__)
