"""Greenlet switches seen from outside with uprobes (tests/tools/greenlet_trace.cpp) against the
program's own record of them (greenlet.settrace in samples/greenlet_switches.py): handlers that
wait first (gevent.sleep, a socket read) and compute later, greenlets that finish, one killed. The
traced work starts once the tool has learnt greenlet's layout from the program's untraced warm-up
switches (a tool starved by a busy machine could otherwise first run after the program ended).

- Every switch the program made is seen (>= 99 %, in order, each probe hit before the program's
  own record of it), with the same target: greenlet ids the program printed (id() = address).
- Every greenlet the program spawned is seen starting, as the next generation of its address (a
  later greenlet may reuse the address of one that is gone).
- Each parked stack read at the next poll has, innermost, the frame the program saw yield, and
  handlers' stacks hold the handler's own waiting frame (wait_sleep / wait_read) under it.
- Running and parked are told apart at every read of a live greenlet (greenlet's layout learnt
  right: _main_greenlet, not _parent, which a hub not yet started would pass for).
- No hit is lost.
- With the public entry points only (the fallback when greenlet's internal functions are not
  exported), what is missed is exactly a finishing greenlet's return to its parent.
- Uprobes refused (CAP_PERFMON and CAP_SYS_ADMIN dropped with setpriv): one line, exit 3.
"""
import bisect
import os
import shutil
import subprocess
import sys

import harness
from harness import expect

PROGRAM = os.path.join(harness.SAMPLES, "greenlet_switches.py")
ROUNDS = 12
HANDLERS = 8


def run(ctx, name, tool_args, wrapper=()):
    """Starts the program (waiting for its go file), attaches the tool, lets the program warm up
    (untraced switches) until the tool has learnt greenlet's layout, then do its traced work.
    Returns (tool returncode, tool stdout lines, tool stderr, program truth lines)."""
    go, warm, truth = ctx.path(name + ".go"), ctx.path(name + ".warm"), ctx.path(name + ".truth")
    prog = subprocess.Popen([ctx.python, PROGRAM, "--rounds", str(ROUNDS), "--handlers", str(HANDLERS),
                             "--go-file", go, "--warm-up-until", warm, "--out", truth], stdout=subprocess.PIPE, text=True)
    tool = None
    try:
        expect(prog.stdout.readline().strip() == "ready", "the program starts")
        # stderr to a file: stdout is read line by line to its end, and a full stderr pipe would
        # stop the tool.
        err_file = open(ctx.path(name + ".stderr"), "w+")
        tool = subprocess.Popen(list(wrapper) + [ctx.args.tool, "--pid", str(prog.pid), "--duration", "90"] + tool_args,
                                stdout=subprocess.PIPE, stderr=err_file, text=True)
        lines = []

        def read_until(prefix):
            for line in tool.stdout:
                lines.append(line.rstrip("\n"))
                if prefix and line.startswith(prefix):
                    return

        read_until("attached")
        open(go, "w").close()  # the program starts once the probes are in place (or refused)
        # The tool learns greenlet's layout from live switch targets; on a busy machine it may
        # first run after a short program ended. The traced work waits for it (or its end).
        read_until("layout")
        open(warm, "w").close()
        read_until(None)  # (communicate() would lose what the line reader buffered)
        tool.wait(timeout=120)
        err_file.seek(0)
        err = err_file.read()
        expect(prog.wait(timeout=60) == 0, "the program ran to its end")
        truth_lines = open(truth).read().splitlines()
        return tool.returncode, lines, err, truth_lines
    finally:
        for p in (prog, tool):
            if p is not None and p.poll() is None:
                harness.kill_quietly(p)
                p.wait()


def parse(lines, truth):
    """The tool's switches while the program traced (its warm-up's are left out), the parked
    stacks, the program's switches and spawned greenlets, the tool's summary, and per address the
    greenlets seen starting there before the traced work."""
    fields = dict(l.split() for l in truth if l.split()[0] in ("begin", "end"))
    begin, end = int(fields["begin"]), int(fields["end"])
    switches = [l.split() for l in lines if l.startswith("switch ")]
    switches = [(int(s[1]), int(s[2]), int(s[3], 16), int(s[4]), s[5], int(s[6], 16)) for s in switches]
    warm_up_starts = {}
    for s in switches:
        if s[0] < begin and s[4] == "start":
            warm_up_starts[s[2]] = warm_up_starts.get(s[2], 0) + 1
    switches = [s for s in switches if begin <= s[0] <= end]
    parked = []
    for l in lines:
        if l.startswith("parked "):
            _, g, gen, t, status, stack = l.split(" ", 5)
            parked.append((int(g, 16), int(gen), int(t), status, [] if stack == "-" else stack.split("|")))
    program = []
    spawned = []
    for l in truth:
        f = l.split()
        if f[0] == "trace":
            program.append((int(f[1]), f[2], int(f[3]), int(f[4]), f[5]))
        elif f[0] == "greenlet":
            spawned.append((f[1], int(f[2])))
    summary = dict(kv.split("=", 1) for kv in next(l for l in lines if l.startswith("summary ")).split()[1:])
    return switches, parked, program, spawned, summary, warm_up_starts


def match(program, switches):
    """Program switches in order, each to the next probe hit with the same target that came before
    it. Returns (matched program indices, the unmatched program switches)."""
    j, matched, missed = 0, [], []
    for i, (t, _, _, target, _) in enumerate(program):
        k = j
        while k < len(switches) and switches[k][0] <= t and switches[k][2] != target:
            k += 1
        if k < len(switches) and switches[k][0] <= t and switches[k][2] == target:
            matched.append(i)
            j = k + 1
        else:
            missed.append(program[i])
    return matched, missed


def check_internal(ctx):
    rc, lines, err, truth = run(ctx, "internal", [])
    expect(rc == 0, "greenlet_trace exited %d: %s" % (rc, err))
    kinds = [l.split()[1] for l in lines if l.startswith("entry ")]
    expect(kinds == ["g_switchstack", "g_initialstub", "UserGreenlet()"], "greenlet's internal functions are probed: %s" % kinds)
    print("ok: %s" % next(l for l in lines if l.startswith("layout ")))
    switches, parked, program, spawned, summary, warm_up_starts = parse(lines, truth)
    print("ok: %s" % next(l for l in lines if l.startswith("summary ")))
    expect(len(program) >= ROUNDS * HANDLERS * 4, "the program switched %d times" % len(program))

    matched, missed = match(program, switches)
    share = len(matched) / len(program)
    expect(share >= 0.99, "%d of %d switches seen (%.2f %%); first missed: %s" % (len(matched), len(program), 100 * share, missed[:3]))
    print("ok: %d of %d switches seen in order (%.2f %%), %d probe hits" % (len(matched), len(program), 100 * share, len(switches)))
    expect(len(switches) <= len(program) * 1.01 + 2, "no switches the program did not make: %d vs %d" % (len(switches), len(program)))
    expect(summary["lost"] == "0", "no hit lost: %s" % summary["lost"])
    expect(summary["unresolved"] == "0", "every target resolved to its PyGreenlet: %s" % summary["unresolved"])

    # Targets: every greenlet the program spawned starts once, as the next generation of its address.
    roles = {}  # address -> roles of the greenlets that had it, in spawn (= start) order
    for role, ident in spawned:
        roles.setdefault(ident, []).append(role)
    starts = {}
    for s in switches:
        if s[4] == "start":
            starts.setdefault(s[2], []).append(s[3])
    for ident, had in roles.items():
        first = warm_up_starts.get(ident, 0) + 1  # after the warm-up's greenlets that had the address
        expect(starts.get(ident) == list(range(first, first + len(had))),
               "greenlets at %#x (%s) start as generations %d..%d: %s" % (ident, had, first, first + len(had) - 1,
                                                                      starts.get(ident)))
    reused = sum(1 for had in roles.values() if len(had) > 1)
    print("ok: %d greenlets seen starting, each the next generation of its address (%d addresses reused)"
          % (len(spawned), reused))

    # Parked stacks against the frame the program saw yield at the greenlet's last switch-out.
    yields = {}
    for t, _, origin, _, frame in program:
        yields.setdefault(origin, []).append((t, frame))
    def role(g, generation):
        had, i = roles.get(g, []), generation - 1 - warm_up_starts.get(g, 0)
        return had[i] if 0 <= i < len(had) else None
    agree = read = 0
    own_frames = set()
    for g, generation, t, status, stack in parked:
        if status != "parked" or not stack:
            continue
        outs = yields.get(g, [])
        i = bisect.bisect_right([x[0] for x in outs], t) - 1
        if i < 0:
            continue
        read += 1
        innermost = stack[0].split(" ")[0]
        agree += innermost == outs[i][1]
        if role(g, generation) == "handler":
            names = [f.split(" ")[0] for f in stack]
            expect("handler" in names, "a parked handler's stack holds handler: %s" % stack)
            own_frames.update(n for n in names[:names.index("handler")] if n.startswith("wait_"))
    layout = next(l for l in lines if l.startswith("layout "))
    expect("parent=-" not in layout.split("main{")[0], "a user greenlet's _parent is learnt: %s" % layout)
    unknown = [p for p in parked if p[3] in ("parked?", "running?")]
    # (What a failure names is all a CI run leaves: which greenlets, in which role, read when
    # against the program's own switches of them.)
    def around(g, t):
        times = [x[0] for x in yields.get(g, [])]
        i = bisect.bisect_right(times, t)
        return ("last yield %.2f ms before" % ((t - times[i - 1]) / 1e6) if i else "no yield before",
                "next %.2f ms after" % ((times[i] - t) / 1e6) if i < len(times) else "none after")
    expect(not unknown, "%d of %d reads of live greenlets could not tell running from parked (%s): %s"
           % (len(unknown), len([p for p in parked if p[3].rstrip("?") in ("parked", "running")]), layout,
              [("%#x" % g, generation, role(g, generation), status, stack[:2], around(g, t))
               for g, generation, t, status, stack in unknown[:4]]))
    expect(read >= 20, "%d parked stacks read" % read)
    expect(agree >= 0.98 * read, "%d of %d parked stacks end in the frame that yielded" % (agree, read))
    expect(own_frames == {"wait_sleep", "wait_read"}, "handlers seen waiting in their own frames: %s" % sorted(own_frames))
    print("ok: %d of %d parked stacks end in the frame that yielded; handlers parked under %s" % (agree, read, sorted(own_frames)))


def check_public(ctx):
    rc, lines, err, truth = run(ctx, "public", ["--probes", "public", "--no-stacks"])
    expect(rc == 0, "greenlet_trace --probes public exited %d: %s" % (rc, err))
    switches, _, program, _, summary, _ = parse(lines, truth)
    matched, missed = match(program, switches)
    finishing = [m for m in missed if m[4] == "-"]  # the origin has no frame left: it finished
    expect(len(finishing) == len(missed), "public entry points miss only finishing greenlets' returns: %s"
           % [m for m in missed if m[4] != "-"][:3])
    expect(len(matched) + len(missed) == len(program), "accounted for")
    print("ok: public entry points (%s): %d of %d switches seen, the %d missed are greenlets finishing"
          % (next(l for l in lines if l.startswith("summary ")).split()[1], len(matched), len(program), len(missed)))


def check_refused(ctx):
    if not shutil.which("setpriv"):
        print("note: setpriv missing (util-linux): the refused-uprobes case is not run")
        return
    drop = ["setpriv", "--bounding-set", "-perfmon,-sys_admin", "--inh-caps", "-perfmon,-sys_admin"]
    rc, _, err, _ = run(ctx, "refused", [], wrapper=drop)
    lines = err.strip().splitlines()
    expect(rc == 3, "without CAP_PERFMON the tool says so and exits 3, not %d: %s" % (rc, err))
    expect(len(lines) == 1 and "CAP_PERFMON" in lines[0] and "greenlet switches not followed" in lines[0],
           "one line saying what and what to do: %r" % err)
    print("ok: refused: %s" % lines[0])


def test(ctx):
    if subprocess.run([ctx.python, "-c", "import gevent"], capture_output=True).returncode != 0:
        print("SKIP: gevent is not installed for %s (Debian: apt-get install python3-gevent; "
              "../shared/tools/get-python --gevent 3.14)" % ctx.python)
        sys.exit(harness.SKIP)
    if os.geteuid() != 0:
        print("SKIP: uprobes need root or CAP_PERFMON; this test runs as root")
        sys.exit(harness.SKIP)
    if not os.path.exists("/sys/bus/event_source/devices/uprobe/type"):
        print("SKIP: this kernel has no uprobe PMU")
        sys.exit(harness.SKIP)
    check_internal(ctx)
    check_public(ctx)
    check_refused(ctx)


if __name__ == "__main__":
    harness.main(test, __doc__, extra_args=[(("--tool",), {"required": True})])
