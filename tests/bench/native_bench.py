"""What native frames and off-CPU reasons cost, measured with their test tools: the pause of a
thread per native unwind (p50/p99) as the tool measures it and as the thread itself sees it (a
loop that notes every gap in its own progress: the gap around each stop), the unwinder's own
time, the sampled program's slowdown at 100 Hz (its work done with and without sampling,
alternated), and the cost of one off-CPU reason (a thread still in the same call, and a thread's
first look). Not part of ctest: the machine's load moves these figures; run it twice on a quiet
machine.

    python3 tests/bench/native_bench.py --tools build/tests [--seconds 5] [--python pyenv-3.11 ...]
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

WORK = """
import sys, threading, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def level3(): return fib(15)
def level2(): return level3()
def level1(): return level2()
done = [0]
def worker():
    while not stop:
        level1()
        done[0] += 1
stop = False
threads = [threading.Thread(target=worker) for _ in range(int(sys.argv[1]))]
for t in threads: t.start()
print("ready", flush=True)
time.sleep(float(sys.argv[2]))
stop = True
for t in threads: t.join()
print(done[0], flush=True)
"""


def run_work(python, threads, seconds, tool=None):
    prog = subprocess.Popen([python, "-c", WORK, str(threads), str(seconds)], stdout=subprocess.PIPE, text=True)
    prog.stdout.readline()
    summary = None
    if tool:
        out = subprocess.run(tool + ["--pid", str(prog.pid), "--duration", str(seconds - 0.2), "--quiet"],
                             capture_output=True, text=True)
        summary = json.loads(out.stdout.splitlines()[-1])
    units = int(prog.stdout.readline())
    prog.wait()
    return units, summary


def native_figures(tools, python, seconds, threads):
    tool = [os.path.join(tools, "swprof_native_stacks"), "--interval-ms", "10"]
    base, sampled, summaries = [], [], []
    for _ in range(3):
        base.append(run_work(python, threads, seconds)[0])
        units, summary = run_work(python, threads, seconds, tool)
        sampled.append(units)
        summaries.append(summary)
    pick = lambda k: statistics.median(s[k] for s in summaries)
    rate = statistics.median(s["samples"] / (s["wall_ms"] / 1000) for s in summaries)
    return {"threads": threads, "samples_per_s": round(rate), "pause_p50_us": pick("pause_p50_us"),
            "pause_p99_us": pick("pause_p99_us"), "wait_p50_us": pick("wait_p50_us"), "walk_p50_us": pick("walk_p50_us"),
            "unwind_p50_us": pick("unwind_p50_us"), "unwind_p99_us": pick("unwind_p99_us"),
            "tool_cpu_pct": round(100 * statistics.median(s["cpu_ms"] / s["wall_ms"] for s in summaries), 1),
            "cpu_us_per_sample": pick("steady_cpu_us_per_sample"),
            "merged_pct": round(100 * statistics.median(s["merged"] / max(1, s["samples"]) for s in summaries), 1),
            "slowdown_pct": round(100 * (1 - statistics.median(sampled) / statistics.median(base)), 1)}


GAPS = """
import json, sys, time
end = time.monotonic_ns() + int(float(sys.argv[1]) * 1e9)
print("ready", flush=True)
last = time.monotonic_ns()
gaps = []
while last < end:
    t = time.monotonic_ns()
    if t - last > 5000:
        gaps.append((last, t))
    last = t
print(json.dumps(gaps))
"""


def target_view(tools, python, seconds):
    """The gaps in a spinning thread's own progress that hold a stop, against those that do not
    (the machine's other work preempting it), in microseconds."""
    prog = subprocess.Popen([python, "-c", GAPS, str(seconds)], stdout=subprocess.PIPE, text=True)
    prog.stdout.readline()
    out = subprocess.run([os.path.join(tools, "swprof_native_stacks"), "--pid", str(prog.pid), "--interval-ms", "10",
                          "--duration", str(seconds - 0.5)], capture_output=True, text=True)
    gaps = json.loads(prog.stdout.readline())
    prog.wait()
    captures = [json.loads(l)["capture"] for l in out.stdout.splitlines() if '"type":"stack"' in l and '"merged"' in l]
    import bisect
    gap_starts = [g[0] for g in gaps]
    during, seen = [], set()
    for start, end in captures:
        # The thread stops after the request (capture start) and before the capture returns.
        i = bisect.bisect_left(gap_starts, start)
        inside = [k for k in range(i, len(gaps)) if gaps[k][0] <= end]
        if inside:
            k = max(inside, key=lambda k: gaps[k][1] - gaps[k][0])
            seen.add(k)
            during.append((gaps[k][1] - gaps[k][0]) / 1000)
    other = [(b - a) / 1000 for k, (a, b) in enumerate(gaps) if k not in seen]
    q = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))] if v else 0
    return {"stops": len(captures), "gaps_with_a_stop": len(during), "gap_p50_us": round(q(during, 0.5), 1),
            "gap_p99_us": round(q(during, 0.99), 1), "other_gaps": len(other), "other_gap_p50_us": round(q(other, 0.5), 1)}


def offcpu_figures(tools, python):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    threading.Thread(target=lambda: [held.append(listener.accept()[0]) for _ in range(8)], daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="swprof-bench-")
    prog = subprocess.Popen([python, os.path.join(harness.SAMPLES, "offcpu_waits.py"), "--connect",
                             str(listener.getsockname()[1]), "--unix-path", os.path.join(tmp, "s.sock")],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(prog.stdout.readline().split()[1])
        client = socket.create_connection(("127.0.0.1", port))
        prog.stdout.readline()
        out = subprocess.run([os.path.join(tools, "swprof_offcpu_reasons"), "--pid", str(prog.pid), "--rounds", "300",
                              "--interval-ms", "10", "--quiet"], capture_output=True, text=True)
        s = json.loads(out.stdout.splitlines()[-1])
        client.close()
        return {k: s[k] for k in ("reads", "same_call", "warm_p50_us", "warm_p99_us", "warm_mean_us", "cold_p50_us",
                                  "cold_p99_us")}
    finally:
        prog.kill()
        prog.wait()
        listener.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", required=True, help="the directory with swprof_native_stacks and swprof_offcpu_reasons")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--python", action="append")
    args = parser.parse_args()
    for name in args.python or ["pyenv-3.11", "debian-3.11", "sid-3.14"]:
        python, _ = harness.resolve_python(name)
        if not python:
            print("%s: not installed" % name)
            continue
        print("%s target-view %s" % (name, json.dumps(target_view(args.tools, python, args.seconds))), flush=True)
        for threads in (1, 4):
            print("%s native %s" % (name, json.dumps(native_figures(args.tools, python, args.seconds, threads))), flush=True)
        print("%s offcpu %s" % (name, json.dumps(offcpu_figures(args.tools, python))), flush=True)


if __name__ == "__main__":
    main()
