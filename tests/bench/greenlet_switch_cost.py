"""What following greenlet switches with uprobes costs: a switch-heavy gevent program (many
greenlets, each computing a little and yielding with gevent.sleep(0)) timed with the uprobes of
tests/tools/greenlet_trace.cpp on and off, in interleaved runs; medians. Two levels of work between
yields: none (the highest switch rate gevent reaches, ~10^6/s) and --work loop iterations (about
50 000 switches a second). Reports the target's slowdown, the cost per switch, the rate, hits lost,
and the observer's own CPU per 1000 hits. Not part of ctest: the machine's noise matters, run it on
a quiet machine (or read the spread it prints).

    python3 tests/bench/greenlet_switch_cost.py --tool build/tests/swprof_greenlet_trace \\
        [--python debian-3.11 --python sid-3.14] [--runs 7] [--work 1000] [--probes internal|public]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

# Each yield is two switches (to the hub and back); the work between is a few microseconds.
WORKLOAD = r"""
import os, sys, time
import gevent
greenlets, yields, work, go = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.002)
def worker():
    x = 0
    for i in range(yields):
        for j in range(work):
            x += j
        gevent.sleep(0)
    return x
start, cpu = time.perf_counter(), time.process_time()
gevent.joinall([gevent.spawn(worker) for _ in range(greenlets)])
print("%.6f %.6f" % (time.perf_counter() - start, time.process_time() - cpu), flush=True)
"""


def one_run(python, tool, probes, greenlets, yields, work, tmp, with_probes):
    go = os.path.join(tmp, "go")
    if os.path.exists(go):
        os.remove(go)
    prog = subprocess.Popen([python, "-c", WORKLOAD, str(greenlets), str(yields), str(work), go], stdout=subprocess.PIPE, text=True)
    assert prog.stdout.readline().strip() == "ready"
    observer = None
    if with_probes:
        observer = subprocess.Popen([tool, "--pid", str(prog.pid), "--duration", "600", "--quiet", "--probes", probes],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in observer.stdout:
            if line.startswith("attached"):
                break
    open(go, "w").close()
    elapsed = [float(x) for x in prog.stdout.readline().split()]  # wall, the process's CPU (user + system)
    prog.wait()
    summary = None
    if observer:
        out, err = observer.communicate(timeout=120)
        if observer.returncode != 0:
            raise SystemExit("greenlet_trace failed: %s" % err)
        line = next(l for l in out.splitlines() if l.startswith("summary "))
        summary = dict(kv.split("=", 1) for kv in line.split()[1:])
    return elapsed, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", required=True)
    parser.add_argument("--python", action="append")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--greenlets", type=int, default=100)
    parser.add_argument("--yields", type=int, default=2000)
    parser.add_argument("--work", type=int, default=1000, help="loop iterations between yields in the second run")
    parser.add_argument("--probes", default="auto", choices=["auto", "internal", "public"])
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="swprof-bench-")
    for name in args.python or ["debian-3.11", "sid-3.14"]:
        python, description = harness.resolve_python(name)
        if not python or subprocess.run([python, "-c", "import gevent"], capture_output=True).returncode:
            print("%s: skipped (%s, with gevent)" % (name, description))
            continue
        for work, yields in ((0, args.yields), (args.work, max(1, args.yields // 5))):
            measure(name, python, args, work, yields, tmp)
    shutil.rmtree(tmp, ignore_errors=True)


def measure(name, python, args, work, yields, tmp):
    off, on, summaries = [], [], []
    for _ in range(args.runs):  # interleaved: off, on, off, on ...
        off.append(one_run(python, args.tool, args.probes, args.greenlets, yields, work, tmp, False)[0])
        t, s = one_run(python, args.tool, args.probes, args.greenlets, yields, work, tmp, True)
        on.append(t)
        summaries.append(s)
    # The kernel handles a uprobe hit in the target's thread: its CPU time (user + system) carries
    # the cost and is less disturbed than wall time by whatever else the machine runs.
    cpu_off, cpu_on = statistics.median(x[1] for x in off), statistics.median(x[1] for x in on)
    off, on = [x[0] for x in off], [x[0] for x in on]
    switches = statistics.median(int(s["switches"]) for s in summaries)
    hits = statistics.median(int(s["hits"]) for s in summaries)
    lost = sum(int(s["lost"]) for s in summaries)
    cpu_per_1000 = statistics.median(int(s["cpu_ns"]) / max(1, int(s["hits"])) * 1000 for s in summaries)
    t_off, t_on = statistics.median(off), statistics.median(on)
    probes = "+".join(site.split(":")[0] for site in summaries[0]["sites"].split(","))
    print("%s, %d greenlets x %d yields, %d iterations of work between (probes %s):" % (name, args.greenlets, yields, work, probes))
    print("  switches  %d per run, %d probe hits" % (switches, hits))
    print("  off       median %.3f s  (runs %s)" % (t_off, " ".join("%.3f" % x for x in off)))
    print("  on        median %.3f s  (runs %s)" % (t_on, " ".join("%.3f" % x for x in on)))
    print("  rate      %.0f switches/s off, %.0f on" % (switches / t_off, switches / t_on))
    print("  slowdown  wall %+.1f %% (%+.0f ns per switch); CPU %+.1f %% (%.3f -> %.3f s, %+.0f ns per switch, %+.0f per probe hit)"
          % (100 * (t_on / t_off - 1), (t_on - t_off) / switches * 1e9, 100 * (cpu_on / cpu_off - 1), cpu_off, cpu_on,
             (cpu_on - cpu_off) / switches * 1e9, (cpu_on - cpu_off) / hits * 1e9))
    print("  lost      %d hits over %d runs" % (lost, args.runs))
    print("  observer  %.0f us CPU per 1000 hits (drain + decode, polling every 10 ms)" % (cpu_per_1000 / 1000))


if __name__ == "__main__":
    main()
