"""Containers, as seen from the host: a Python process in its own PID namespace (`unshare -p -f
--mount-proc`, the shape of every Docker container) knows its threads by namespace-local ids. Attaching
with --pid, launching through `unshare`, and a PID plus mount namespace whose interpreter lives
at a path only it can see all give the right threads (host ids, names) and stacks."""
import os
import shutil
import subprocess
import time

import harness
from harness import expect, find_path

APP = os.path.join(harness.SAMPLES, "container_app.py")


def check(ctx, swp, pid, what):
    doc = ctx.analyze_json(swp, "--by-thread")
    rec = doc["recording"]
    expect(rec["samples"] > 20, "%s: %d samples" % (what, rec["samples"]))
    expect(rec["errors"] <= max(2, rec["samples"] // 100), "%s: errors %d of %d" % (what, rec["errors"], rec["samples"]))
    roots = {r["function"]: r for r in doc["roots"]}
    crunching = []
    for name in ("worker-0", "worker-1"):
        root = [r for f, r in roots.items() if f.endswith("(%s)" % name)]
        expect(root, "%s: thread %s named (roots %s)" % (what, name, sorted(roots)))
        expect(find_path(root[0]["children"], ["worker"], ctx.version), "%s: %s runs worker" % (what, name))
        if find_path(root[0]["children"], ["worker", "crunch"], ctx.version):
            crunching.append(name)
    # Each worker computes about 40 % of the time, and most samples of both show it. But a worker
    # can fall into step with the sampler: CI once found one asleep in select() (as the kernel
    # said: off-CPU in pselect6) at all 100 of its samples while the other crunched in 42 %.
    expect(crunching, "%s: a worker runs worker -> crunch" % what)
    expect(any(f.endswith("(MainThread)") for f in roots), "%s: MainThread named" % what)
    if pid:
        # Thread ids are the host's: the ones /proc shows for the process (read while it runs).
        tids = {int(f.split()[1]) for f in roots}
        expect(tids <= pid["tids"], "%s: thread ids %s are the host's %s" % (what, sorted(tids), sorted(pid["tids"])))
    print("ok: %s: %d samples, threads %s" % (what, rec["samples"], sorted(roots)))


def inner_python(outer_pid, timeout=10.0):
    """The Python process unshare forked (its child), and its host thread ids once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            children = open("/proc/%d/task/%d/children" % (outer_pid, outer_pid)).read().split()
        except OSError:
            children = []
        if children:
            pid = int(children[0])
            tids = set(int(t) for t in os.listdir("/proc/%d/task" % pid))
            if len(tids) >= 3:
                status = open("/proc/%d/status" % pid).read()
                nspid = [l for l in status.splitlines() if l.startswith("NSpid:")][0].split()[1:]
                return pid, tids, nspid
        time.sleep(0.05)
    raise AssertionError("no Python process with its threads under unshare %d" % outer_pid)


def test(ctx):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("SKIP: PID namespaces need root and unshare")
        raise SystemExit(harness.SKIP)
    # 1. Attach to a process in its own PID namespace.
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", ctx.python, APP, "--seconds", "20"],
                             stdout=subprocess.DEVNULL)
    try:
        pid, tids, nspid = inner_python(outer.pid)
        expect(len(nspid) == 2 and nspid[1] == "1", "the program is pid 1 of its namespace (NSpid %s)" % nspid)
        out = ctx.path("attach.swp")
        ctx.record(out, pid=pid, options=["--duration", "1s"])
        check(ctx, out, {"tids": tids}, "attached in a PID namespace")
    finally:
        harness.kill_quietly(outer)
        outer.wait()

    # 2. Launch through unshare: swprof follows the launcher to the Python process it starts.
    out = ctx.path("launch.swp")
    proc = ctx.record(out, ["unshare", "--pid", "--fork", "--mount-proc", ctx.python, APP, "--seconds", "1.5"])
    check(ctx, out, None, "launched through unshare")

    # 3. PID and mount namespaces, the interpreter at a path that only exists inside
    #    (/opt/hidden-python), the program started as pid 1 of its namespace.
    real = os.path.realpath(ctx.python)
    home = os.path.dirname(os.path.dirname(real))
    prefix = home if os.path.isdir(os.path.join(home, "lib")) else "/usr"
    expect(real.startswith(prefix + "/"), "interpreter %s lives under its prefix %s" % (real, prefix))
    inner = "/opt/hidden-python" + real[len(prefix):]
    expect(not os.path.exists("/opt/hidden-python"), "/opt/hidden-python must not exist on the host")
    root = ctx.path("root")
    os.makedirs(root)
    script = ('mount --make-rprivate / && mount --rbind / "$1" && mount -t tmpfs none "$1/opt" && '
              'mkdir "$1/opt/hidden-python" && mount --bind "$2" "$1/opt/hidden-python" && '
              'exec chroot "$1" "$3" "$4" --seconds 20')
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "sh", "-c", script, "sh", root,
                              prefix, inner, APP],
                             stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONHOME="/opt/hidden-python"))
    try:
        pid, tids, nspid = inner_python(outer.pid)
        maps = open("/proc/%d/maps" % pid).read()
        expect("/opt/hidden-python" in maps, "the process maps its interpreter at a path only it can see")
        out = ctx.path("container.swp")
        ctx.record(out, pid=pid, options=["--duration", "1s"])
        check(ctx, out, {"tids": tids}, "PID and mount namespaces")
    finally:
        harness.kill_quietly(outer)
        outer.wait()


if __name__ == "__main__":
    harness.main(test, __doc__)
