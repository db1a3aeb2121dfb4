"""Finding the runtime on every build layout: the validated data-segment scan (as on a stripped
build, forced with SWPROF_FORCE_SCAN), an interpreter whose executable or libpython was deleted
while running, and a process in its own mount namespace and root (paths that only exist through
/proc/PID/root, as in a container)."""
import glob
import os
import shutil
import subprocess
import sys
import time

import harness
from harness import expect, find_path

NESTED = os.path.join(harness.SAMPLES, "nested_sleeps.py")


def attach_and_check(ctx, pid, name, env=None):
    out = ctx.path(name + ".swp")
    ctx.record(out, pid=pid, options=["--duration", "0.8s"], env=env)
    doc = ctx.analyze_json(out)
    expect(find_path(doc["roots"], ["methodB", "methodD"], ctx.version), "%s: methodD under methodB" % name)
    print("ok: %s: %d samples" % (name, doc["recording"]["samples"]))


def start(argv, **kwargs):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, **kwargs)
    time.sleep(0.6)
    expect(proc.poll() is None, "%s started" % argv[0])
    return proc


def maps_once_loaded(pid, text, timeout=10.0):
    """The process's maps once they hold `text` (or as they are after `timeout`): a program started
    through unshare, mount and chroot maps its interpreter later on a busy machine (CI: not yet
    0.6 s after the start, twice in a row)."""
    deadline = time.monotonic() + timeout
    while True:
        maps = open("/proc/%d/maps" % pid).read()
        if text in maps or time.monotonic() >= deadline:
            return maps
        time.sleep(0.05)


def test(ctx):
    env = dict(os.environ, SWPROF_FORCE_SCAN="1")
    # 1. The scan, in launch mode (the runtime is found while the interpreter starts) and attached.
    out = ctx.path("scan.swp")
    # (2 s: the scan finds the runtime 0.1-0.3 s after the interpreter starts here, later on a
    # busy machine; a 0.5 s program once ended first.)
    ctx.record(out, [ctx.python, NESTED, "20"], env=env)
    doc = ctx.analyze_json(out)
    expect(find_path(doc["roots"], ["methodB", "methodC"], ctx.version), "scan (launch): methodC found")
    proc = start([ctx.python, NESTED, "40"])
    try:
        attach_and_check(ctx, proc.pid, "scan-attached", env=env)
    finally:
        proc.kill()

    # 2. Deleted files: a copy of the executable (and of libpython when shared), removed once running.
    real = os.path.realpath(ctx.python)
    copy_dir = ctx.path("deleted")
    os.makedirs(copy_dir)
    exe = os.path.join(copy_dir, os.path.basename(real))
    shutil.copy2(real, exe)
    run_env = dict(os.environ)
    libs = [l for l in subprocess.run(["ldd", real], capture_output=True, text=True).stdout.split()
            if l.startswith("/") and os.path.basename(l).startswith("libpython3")]
    for lib in libs:
        shutil.copy2(lib, os.path.join(copy_dir, os.path.basename(lib)))
        run_env["LD_LIBRARY_PATH"] = copy_dir
    home = os.path.dirname(os.path.dirname(real))
    run_env["PYTHONHOME"] = home if os.path.isdir(os.path.join(home, "lib")) else "/usr"
    proc = start([exe, NESTED, "40"], env=run_env)
    try:
        if libs:
            expect(copy_dir in maps_once_loaded(proc.pid, copy_dir), "the copied libpython is the one loaded")
        shutil.rmtree(copy_dir)
        expect("(deleted)" in open("/proc/%d/maps" % proc.pid).read(), "the mapped files are deleted")
        attach_and_check(ctx, proc.pid, "deleted-files")
    finally:
        proc.kill()

    # 3. Another mount namespace and root: the interpreter's prefix appears at /opt/hidden-python
    #    inside, a path that does not exist outside.
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("note: mount-namespace case not run (needs root and unshare)")
        return
    prefix = home if os.path.isdir(os.path.join(home, "lib")) else "/usr"
    inner = "/opt/hidden-python" + real[len(prefix):] if real.startswith(prefix + "/") else None
    expect(inner is not None, "interpreter %s lives under its prefix %s" % (real, prefix))
    expect(not os.path.exists("/opt/hidden-python"), "/opt/hidden-python must not exist on the host")
    root = ctx.path("root")
    os.makedirs(root)
    # A tmpfs over the new root's /opt holds the mount point, so nothing is created on the host.
    script = ('mount --make-rprivate / && mount --rbind / "$1" && mount -t tmpfs none "$1/opt" && '
              'mkdir "$1/opt/hidden-python" && mount --bind "$2" "$1/opt/hidden-python" && '
              'exec chroot "$1" "$3" "$4" 40')
    proc = start(["unshare", "--mount", "sh", "-c", script, "sh", root, prefix, inner, NESTED],
                 env=dict(os.environ, PYTHONHOME="/opt/hidden-python"))
    try:
        expect("/opt/hidden-python" in maps_once_loaded(proc.pid, "/opt/hidden-python"),
               "the process maps files at paths only it can see")
        attach_and_check(ctx, proc.pid, "mount-namespace")
    finally:
        proc.kill()


if __name__ == "__main__":
    harness.main(test, __doc__)
