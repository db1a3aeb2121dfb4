"""Where the time goes: a function spinning 300 ms and one sleeping 300 ms split about half and half
in wall time, the spinner has >= 90 % in cpu mode and the sleeper >= 90 % in offcpu mode. The GIL:
a pure-Python spinner holds it in >= 90 % of its samples, a thread in time.sleep and zlib (a C
call that releases it) in <= 10 %; record --gil keeps only the holder's samples; --no-idle drops
samples of threads asleep for a whole interval."""
import os

import harness
from harness import expect, expect_close, find_path


def share(doc, name, version):
    """name's share of main's time: the experiment itself, not interpreter startup (which on a
    build without compiled bytecode spends a few hundred ms of CPU compiling the stdlib)."""
    path = find_path(doc["roots"], ["main", name], version)
    expect(path, "%s found" % name)
    return 100.0 * path[-1]["total_ms"] / path[-2]["total_ms"]


def thread_root(doc, name):
    roots = [r for r in doc["roots"] if r["function"].endswith("(%s)" % name)]
    expect(len(roots) == 1, "thread %s among %s" % (name, [r["function"] for r in doc["roots"]]))
    return roots[0]


def test(ctx):
    out = ctx.path("cpu.swp")
    ctx.record(out, [ctx.python, os.path.join(harness.SAMPLES, "cpu_vs_sleep.py"), "--rounds", "5"])
    wall = ctx.analyze_json(out, "--mode", "wall")
    cpu = ctx.analyze_json(out, "--mode", "cpu")
    off = ctx.analyze_json(out, "--mode", "offcpu")
    expect_close(share(wall, "spin", ctx.version), 50.0, 7.0, "wall: spin %")
    expect_close(share(wall, "nap", ctx.version), 50.0, 7.0, "wall: nap %")
    expect(share(cpu, "spin", ctx.version) >= 90.0, "cpu: spin has %.1f%%" % share(cpu, "spin", ctx.version))
    expect(share(off, "nap", ctx.version) >= 90.0, "offcpu: nap has %.1f%%" % share(off, "nap", ctx.version))
    print("ok: cpu spin %.1f%%, offcpu nap %.1f%%" % (share(cpu, "spin", ctx.version), share(off, "nap", ctx.version)))
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
    expect(spin_pct >= 90.0, "the spinner holds the GIL in %.1f%% of its time" % spin_pct)
    expect(sleep_pct <= 10.0, "the sleeper holds the GIL in %.1f%% of its time" % sleep_pct)

    only = ctx.path("gil-only.swp")
    proc = ctx.record(only, [ctx.python, os.path.join(harness.SAMPLES, "gil_threads.py"), "--seconds", "1"],
                      options=["--gil"])
    expect("without the GIL (--gil)" in proc.stderr, "the summary counts the samples left out")
    doc = ctx.analyze_json(only, "--by-thread")
    for root in doc["roots"]:
        expect(abs(root["gil_ms"] - root["wall_ms"]) < 0.01, "--gil: every sample of %s holds the GIL" % root["function"])
    expect(thread_root(doc, "spinner")["samples"] > 60, "--gil keeps the spinner")

    idle = ctx.path("no-idle.swp")
    proc = ctx.record(idle, [ctx.python, os.path.join(harness.SAMPLES, "cpu_vs_sleep.py"), "--rounds", "3"],
                      options=["--no-idle"])
    expect("asleep for a whole interval (--no-idle)" in proc.stderr, "the summary counts idle samples")
    doc = ctx.analyze_json(idle)
    nap = find_path(doc["roots"], ["main", "nap"], ctx.version)
    spin = find_path(doc["roots"], ["main", "spin"], ctx.version)
    expect(spin and spin[-1]["total_ms"] > 700, "--no-idle keeps the spinning samples")
    expect(not nap or nap[-1]["total_ms"] < 60, "--no-idle drops the sleeping ones (%s)" % (nap and nap[-1]["total_ms"]))


if __name__ == "__main__":
    harness.main(test, __doc__)
