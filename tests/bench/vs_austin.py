"""swprof beside austin, measured in one run on this machine (issue 9's goals):

  1. cost: each profiler's own CPU time (user + system, from wait4's rusage) per sampled stack,
     attached in turn to the same running target (threads spinning N frames deep), 1 ms interval;
     beside them the floor any sampler pays: the CPU of waking up once per interval beside the
     same target, sampling nothing (tests/tools/tick_floor.cpp), per thread sampled;
  2. rate: the highest swprof rate with under 1 % late ticks;
  3. slowdown: a CPU-bound program's speed with each profiler attached at 100 Hz, 1 kHz and
     10 kHz against its speed alone, in interleaved windows of a fifth of a second (the profiler
     stopped and let go), median of the pairs;
  4. analysis: analyze (both estimators), flamegraph and export (pprof, and the timelines speedscope and chrome, whose
     output is an entry per sample) of a synthetic 10 M-sample recording (tests/tools/swp_synth.cpp,
     built as build/tests/swp_synth), samples per second, peak RSS (GNU time) and output size.

Not part of ctest (speed is no pass/fail there). Austin is built from its source (see
tests/bench/README.md) and given with --austin PATH or the AUSTIN variable; without it the austin
columns are skipped with a message.

    python3 tests/bench/vs_austin.py --swprof build/swprof --austin /tmp/austin-src/src/austin
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "e2e"))
import harness  # noqa: E402

TARGET = os.path.join(HERE, "spin_deep.py")
AUSTIN_PYTHONS = {"3.8", "3.9", "3.10", "3.11", "3.12", "3.13"}  # what austin 3.7 reads


def run_rusage(argv, timeout, stdout=subprocess.DEVNULL):
    """Runs argv to its end; returns (exit status, CPU seconds user+system of that process)."""
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read()
    proc.stderr.close()
    return proc.returncode, usage.ru_utime + usage.ru_stime, err


class Target:
    """A spin_deep.py process, started and ready."""

    def __init__(self, python, argv):
        self.proc = subprocess.Popen([python, TARGET] + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit("bench: the target did not start: %r" % line)
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Profilers:
    def __init__(self, swprof, austin, tmp):
        self.swprof, self.austin, self.tmp = swprof, austin, tmp

    def swprof_record(self, pid, interval_us, seconds, timeout, extra=()):
        out = os.path.join(self.tmp, "bench.swp")
        if os.path.exists(out):
            os.remove(out)
        argv = [self.swprof, "record", "-q", "-o", out, "--pid", str(pid), "-i", "%dus" % interval_us,
                "-d", "%gs" % seconds] + list(extra)
        return argv, out

    def swprof_cost(self, pid, interval_us, seconds, extra=()):
        argv, out = self.swprof_record(pid, interval_us, seconds, 0, extra)
        rc, cpu, err = run_rusage(argv, seconds + 30)
        if rc != 0:
            raise SystemExit("bench: swprof record failed: %s" % err)
        rec = json.loads(subprocess.run([self.swprof, "analyze", "--format", "json", out], check=True,
                                        capture_output=True, text=True).stdout)["recording"]
        m = re.search(r"late ticks (\d+) of (\d+)", err)  # the closing summary
        realtime = re.search(r"realtime  (.*)", err)
        return {"cpu": cpu, "stacks": rec["samples"], "errors": rec["errors"], "late": rec["late_ticks"],
                "ticks": int(m.group(2)) if m else 0, "bytes": rec["file_bytes"],
                "realtime": realtime.group(1) if realtime else ""}

    def austin_argv(self, pid, interval_us, seconds, out):
        return [self.austin, "-h", "16", "-i", str(interval_us), "-x", str(int(seconds)), "-o", out, "-p", str(pid)]

    def austin_cost(self, pid, interval_us, seconds):
        out = os.path.join(self.tmp, "austin.txt")
        for attempt in range(5):
            rc, cpu, err = run_rusage(self.austin_argv(pid, interval_us, seconds, out), seconds + 30)
            if rc == 0:
                break
            # austin 3.7 now and then dies of SIGSEGV on attach (seen here about once in six
            # runs, with or without swprof before it): try again, say so.
            print("  (austin exited with %d; again)" % rc, flush=True)
        if rc != 0:
            print("  (austin failed 5 times: this run is left out)", flush=True)
            return {"cpu": 0.0, "stacks": 0, "errors": 0}
        stacks, errors = austin_counts(out, err)
        return {"cpu": cpu, "stacks": stacks - errors, "errors": errors}


def austin_counts(path, stderr):
    """Stacks austin sampled and how many failed: its closing statistics (`Error rate : E/N`, on
    stderr), else the stacks in its output."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", stderr)
    m = re.search(r"Error rate\s*:\s*(\d+)/(\d+)", text)
    if m:
        return int(m.group(2)), int(m.group(1))
    with open(path, errors="replace") as f:
        return sum(1 for line in f if line.startswith("P")), 0


def cost_table(args, profilers, pythons):
    print("\n== 1. CPU time per sampled stack (interval %d us, %gs per run, %d runs each, alternating) =="
          % (args.interval_us, args.seconds, args.rounds))
    baseline = Profilers(args.baseline, None, profilers.tmp) if args.baseline else None
    print("%-12s %8s %7s %11s %11s %8s %9s %8s %9s%s" % ("python", "threads", "frames", "swprof µs", "austin µs",
                                                           "ratio", "swp errs", "B/stack", "wake-up",
                                                           "  baseline µs  ratio" if baseline else ""))
    rows = []
    # The floor under both: what waking up once per interval costs on this machine beside the same
    # target, sampling nothing (a 1-thread sample pays it whole; eight threads share it).
    floor = os.path.join(os.path.dirname(os.path.abspath(args.swprof)), "tests", "swp_tick_floor")
    if not os.access(floor, os.X_OK):
        print("(no swp_tick_floor at %s: build the tests for the wake-up floor column)" % floor)
        floor = None
    for name in pythons:
        python, _ = harness.resolve_python(name)
        if not python:
            print("%-12s skipped: not installed" % name)
            continue
        version = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True).stdout.strip()
        # Threads spinning D frames deep; and one spinning beside 64 blocked for good (a server's
        # idle pool: the threads a sample need not read again).
        for threads, idle, depth in ((1, 0, 24), (1, 0, 200), (8, 0, 24), (8, 0, 200), (1, 64, 24)):
            target = Target(python, ["--threads", str(threads), "--idle", str(idle), "--depth", str(depth)])
            try:
                time.sleep(0.3)
                s_cpu = s_n = a_cpu = a_n = b_cpu = b_n = 0.0
                s_err = s_bytes = 0
                with_austin = profilers.austin and version in AUSTIN_PYTHONS
                wake_us = None
                if floor:
                    ticks = max(1, int(args.seconds * 1e6 / args.interval_us))
                    wake_us = float(subprocess.run([floor, str(args.interval_us), str(ticks)], capture_output=True,
                                                   text=True, check=True).stdout) / (threads + idle)
                for _ in range(args.rounds):
                    r = profilers.swprof_cost(target.pid, args.interval_us, args.seconds)
                    s_cpu, s_n, s_err, s_bytes = s_cpu + r["cpu"], s_n + r["stacks"], s_err + r["errors"], s_bytes + r["bytes"]
                    if with_austin:
                        r = profilers.austin_cost(target.pid, args.interval_us, args.seconds)
                        a_cpu, a_n = a_cpu + r["cpu"], a_n + r["stacks"]
                    if baseline:
                        r = baseline.swprof_cost(target.pid, args.interval_us, args.seconds)
                        b_cpu, b_n = b_cpu + r["cpu"], b_n + r["stacks"]
            finally:
                target.stop()
            s_us = 1e6 * s_cpu / max(1, s_n)
            a_us = 1e6 * a_cpu / a_n if a_n else None
            ratio = "%.2f" % (s_us / a_us) if a_us else "-"
            extra = ""
            if baseline:
                b_us = 1e6 * b_cpu / max(1, b_n)
                extra = "  %11.1f  %5s" % (b_us, "%.2f" % (b_us / a_us) if a_us else "-")
            shape = "%d+%d idle" % (threads, idle) if idle else str(threads)
            print("%-12s %8s %7d %11.1f %11s %8s %9d %8.1f %9s%s" % (name, shape, depth, s_us,
                                                                     "%.1f" % a_us if a_us else "-", ratio, s_err,
                                                                     s_bytes / max(1, s_n),
                                                                     "%.1f" % wake_us if wake_us else "-", extra), flush=True)
            rows.append((name, shape, depth, s_us, a_us))
    return rows


def rate_table(args, profilers, python_name):
    python, _ = harness.resolve_python(python_name)
    if not python:
        return
    print("\n== 2. Highest swprof rate with < 1%% late ticks (%s, 24 frames, %gs per run) ==" % (python_name, args.seconds))
    print("%8s %10s %10s %8s %8s %8s" % ("threads", "interval", "", "ticks", "late", "late %"))
    # --realtime (root): the sampling thread under SCHED_FIFO, dropped when ticks take over half
    # the time (then the row says so).
    variants = [("", ())] + ([("realtime", ("--realtime",))] if os.geteuid() == 0 else [])
    for threads in (1, 8):
        target = Target(python, ["--threads", str(threads), "--depth", "24"])
        try:
            time.sleep(0.3)
            for label, extra in variants:
                best = None
                for interval in (1000, 500, 200, 100):
                    r = profilers.swprof_cost(target.pid, interval, args.seconds, extra)
                    pct = 100.0 * r["late"] / max(1, r["ticks"])
                    dropped = "dropped" in r["realtime"]
                    print("%8d %8dus %10s %8d %8d %8.2f%s" % (threads, interval, label, r["ticks"], r["late"], pct,
                                                           "  (SCHED_FIFO dropped: ticks too long)" if dropped else ""),
                          flush=True)
                    if pct < 1.0 and not dropped:
                        best = interval
                print("%8d threads%s: highest rate with < 1%% late ticks: %s"
                      % (threads, " " + label if label else "", "%d Hz" % (1000000 // best) if best else "none"))
        finally:
            target.stop()


def paired_windows(python, profiler_argv, seconds, window):
    """A CPU-bound program (spin_deep.py --chunks) with the profiler attached, the profiler stopped
    (SIGSTOP) and let go again (SIGCONT) every `window` seconds: the program's chunks of work in a
    window where the profiler ran against those in the windows on either side, where it was
    stopped. Run time on this VM drifts by ±15 % from one run to the next, with the host's load;
    within a fifth of a second it barely moves, so each pair compares like with like. Returns the
    slowdowns of the pairs, wall and thread CPU time, as fractions, and the seconds the profiler ran."""
    target = subprocess.Popen([python, TARGET, "--chunks", str(seconds + 2)], stdout=subprocess.PIPE, text=True)
    if target.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the chunked target did not start")
    prof = subprocess.Popen(profiler_argv(target.pid), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    phases = []
    try:
        time.sleep(0.5)  # attached and sampling
        running = False
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and prof.poll() is None:
            prof.send_signal(signal.SIGCONT if running else signal.SIGSTOP)
            t0 = time.monotonic()
            time.sleep(window)
            phases.append((t0, time.monotonic(), running))
            running = not running
    finally:
        prof.send_signal(signal.SIGCONT)
        prof.send_signal(signal.SIGINT)
        try:
            prof.wait(10)
        except subprocess.TimeoutExpired:
            prof.kill()
            prof.wait()
    chunks = json.loads(target.stdout.readline() or "[]")
    target.wait()
    # A chunk counts in a window it lies wholly in, from 20 ms after the signal (a stop takes effect
    # at once; a profiler let go first finishes the tick it was late for).
    guard = 0.02

    def per_chunk(phase):
        t0, t1, _ = phase
        inside = [(e - b, c) for b, e, c in chunks if b >= t0 + guard and e <= t1]
        if len(inside) < 3:
            return None
        return statistics.mean(w for w, _ in inside), statistics.mean(c for _, c in inside)

    means = [per_chunk(p) for p in phases]
    wall, cpu = [], []
    for i in range(1, len(phases) - 1):
        if not phases[i][2] or None in (means[i - 1], means[i], means[i + 1]):
            continue
        # Against both neighbours: a drift across the three windows cancels.
        wall.append(means[i][0] / ((means[i - 1][0] + means[i + 1][0]) / 2) - 1)
        cpu.append(means[i][1] / ((means[i - 1][1] + means[i + 1][1]) / 2) - 1)
    # How long the profiler ran: the half second before the first stop, and its windows.
    ran_s = 0.5 + sum(t1 - t0 for t0, t1, running in phases if running)
    return wall, cpu, ran_s


def slowdown_table(args, profilers, python_name):
    python, _ = harness.resolve_python(python_name)
    if not python:
        return
    swp = os.path.join(profilers.tmp, "slowdown.swp")
    austin_out = os.path.join(profilers.tmp, "slowdown-austin.txt")
    # Each kind: its command, and how many stacks it sampled (the rate it reached: austin's -i is
    # a sleep between samples, under the default 50 µs timer slack, not a deadline: at -i 100 it
    # samples about 5 kHz here, while swprof keeps to the interval).
    swprof_samples = lambda binary: lambda: json.loads(subprocess.run(
        [binary, "analyze", "--format", "json", swp], check=True, capture_output=True, text=True).stdout)["recording"]["samples"]
    kinds = []
    for hz in (100, 1000, 10000):
        interval = 1000000 // hz
        kinds.append(("swprof %d Hz" % hz,
                      lambda pid, i=interval: [profilers.swprof, "record", "-q", "-o", swp, "--pid", str(pid),
                                               "-i", "%dus" % i], swprof_samples(profilers.swprof)))
        if args.baseline:
            kinds.append(("baseline %d Hz" % hz,
                          lambda pid, i=interval: [args.baseline, "record", "-q", "-o", swp, "--pid", str(pid),
                                                   "-i", "%dus" % i], swprof_samples(args.baseline)))
        if profilers.austin:
            kinds.append(("austin %d Hz" % hz,
                          lambda pid, i=interval: [profilers.austin, "-h", "16", "-i", str(i), "-o", austin_out,
                                                   "-p", str(pid)], lambda: austin_counts(austin_out, "")[0]))
    # At 10 kHz, swprof's remote reads alone (tests/tools/read_floor.cpp): the thread list only,
    # and the stacks walked and confirmed as the recorder does. The program pays for each of its
    # busy cache lines a tick reads.
    read_floor = os.path.join(os.path.dirname(os.path.abspath(profilers.swprof)), "tests", "swp_read_floor")
    ticks_file = os.path.join(profilers.tmp, "read-floor-ticks")
    read_ticks = lambda: int(open(ticks_file).read())
    if os.access(read_floor, os.X_OK):
        for what in ("list", "walk"):
            kinds.append(("reads: %s 10000 Hz" % what,
                          lambda pid, w=what: [read_floor, w, str(pid), "100", ticks_file], read_ticks))
    else:
        print("(no swp_read_floor at %s: build the tests for the rows of reads alone)" % read_floor)
    print("\n== 3. Target slowdown (%s, CPU-bound; each profiler stopped and let go every %.2fs for %gs: "
          "its windows against the stopped ones on either side, median of the pairs) =="
          % (python_name, args.window, args.slowdown_seconds))
    print("%-20s %6s %10s %16s %10s %16s %10s" % ("", "pairs", "slowdown", "IQR", "CPU", "CPU IQR", "rate"))
    for k, argv, sampled in kinds:
        for attempt in range(3):  # (austin 3.7 now and then dies of SIGSEGV on attach)
            wall, cpu, ran_s = paired_windows(python, argv, args.slowdown_seconds, args.window)
            if len(wall) >= 4:
                break
            print("  (%s ended early; again)" % k, flush=True)
        if len(wall) < 4:
            print("%-20s %6d  (too few windows: the profiler ended early?)" % (k, len(wall)))
            continue
        qw, qc = statistics.quantiles(wall, n=4), statistics.quantiles(cpu, n=4)
        print("%-20s %6d %9.1f%% %7.1f%%..%5.1f%% %9.1f%% %7.1f%%..%5.1f%% %7.0f Hz"
              % (k, len(wall), 100 * statistics.median(wall), 100 * qw[0], 100 * qw[2],
                 100 * statistics.median(cpu), 100 * qc[0], 100 * qc[2], sampled() / ran_s), flush=True)


def analysis_table(args):
    synth = args.synth or os.path.join(os.path.dirname(os.path.abspath(args.swprof)), "tests", "swp_synth")
    if not os.access(synth, os.X_OK):
        print("\n== 4. Analysis: skipped (no swp_synth at %s; build the tests)" % synth)
        return
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        print("\n== 4. Analysis: skipped (GNU time missing: apt-get install time)")
        return
    tmp = tempfile.mkdtemp(prefix="swprof-bench-analysis-")
    swp = os.path.join(tmp, "synth.swp")
    subprocess.run([synth, "--samples", str(args.samples), "-o", swp], check=True, stdout=subprocess.DEVNULL)
    print("\n== 4. Analysis of a synthetic %d-sample recording (%.1f MB) ==" % (args.samples, os.path.getsize(swp) / 1e6))
    print("%-31s %8s %14s %10s %10s" % ("command", "seconds", "samples/s", "peak RSS", "output"))
    commands = [("analyze", ["analyze", swp], None),
                ("analyze --estimator skywalking", ["analyze", "--estimator", "skywalking", swp], None),
                ("flamegraph", ["flamegraph", swp, "-o", os.path.join(tmp, "f.svg")], "f.svg")]
    for fmt, name in (("pprof", "p.pb.gz"), ("speedscope", "s.json"), ("chrome", "c.json")):
        commands.append(("export --format " + fmt, ["export", "--format", fmt, swp, "-o", os.path.join(tmp, name)], name))
    for label, argv, output in commands:
        t = time.monotonic()
        proc = subprocess.run([gnu_time, "-v", args.swprof] + argv, capture_output=True, text=True)
        elapsed = time.monotonic() - t
        if proc.returncode != 0:
            print("%-31s failed: %s" % (label, proc.stderr.strip().splitlines()[-1:]))
            continue
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
        size = os.path.getsize(os.path.join(tmp, output)) / 1e6 if output else 0
        print("%-31s %8.2f %14.0f %8.0f MB %7.0f MB" % (label, elapsed, args.samples / elapsed, rss / 1024.0, size))
        if output:
            os.unlink(os.path.join(tmp, output))
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--austin", default=os.environ.get("AUSTIN"), help="austin binary (default: $AUSTIN)")
    parser.add_argument("--baseline", help="another swprof binary (an older build) measured in the same runs")
    parser.add_argument("--python", action="append",
                        help="interpreters for the cost table (default: pyenv-3.11 pyenv-3.13 sid-3.14 sid-3.15)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one profiler run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each profiler per case, alternating")
    parser.add_argument("--interval-us", type=int, default=1000)
    parser.add_argument("--slowdown-python", default="pyenv-3.11")
    parser.add_argument("--slowdown-seconds", type=float, default=12.0, help="length of one profiler's slowdown run")
    parser.add_argument("--window", type=float, default=0.2, help="slowdown: seconds between stopping and letting go")
    parser.add_argument("--samples", type=int, default=10_000_000, help="samples in the synthetic recording")
    parser.add_argument("--synth", help="the swp_synth tool (default: tests/swp_synth beside swprof)")
    parser.add_argument("--only", choices=["cost", "rate", "slowdown", "analysis"], action="append")
    args = parser.parse_args()
    args.swprof = os.path.abspath(args.swprof)
    if args.baseline:
        args.baseline = os.path.abspath(args.baseline)
    if args.austin and not os.access(args.austin, os.X_OK):
        raise SystemExit("bench: --austin %s is not an executable" % args.austin)
    if not args.austin:
        print("bench: no austin (give --austin PATH or AUSTIN=PATH; tests/bench/README.md says how to build it):"
              " its columns are skipped")
    tmp = tempfile.mkdtemp(prefix="swprof-bench-")
    profilers = Profilers(args.swprof, args.austin, tmp)
    only = set(args.only or ["cost", "rate", "slowdown", "analysis"])
    started = time.monotonic()
    try:
        if "cost" in only:
            cost_table(args, profilers, args.python or ["pyenv-3.11", "pyenv-3.13", "sid-3.14", "sid-3.15"])
        if "rate" in only:
            rate_table(args, profilers, "pyenv-3.11")
        if "slowdown" in only:
            slowdown_table(args, profilers, args.slowdown_python)
        if "analysis" in only:
            analysis_table(args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("\nbench took %.0fs" % (time.monotonic() - started))


if __name__ == "__main__":
    main()
