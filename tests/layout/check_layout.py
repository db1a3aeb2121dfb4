"""Compiles offsets_probe.c against every CPython whose headers are installed and checks that
swprof's built-in Layout has the same offsets. Versions without headers are listed as skipped.
Then runs asyncio_probe.py with every installed interpreter: the asyncio fields that no header
declares (Modules/_asynciomodule.c's TaskObj...) against the running interpreter itself."""
import glob
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(here), "e2e"))
import harness  # noqa: E402  (finds the interpreters the e2e tests use)

# Checked by asyncio_probe.py against the interpreters, not by the headers.
PROBED_AT_RUN_TIME = ("asyncio.task_", "asyncio.future_iter_future", "asyncio.wakeup_task", "asyncio.partial_args",
                      "asyncio.yield_from_depth")
dump = sys.argv[1]
cc = os.environ.get("CC", "cc")


def header_dirs():
    """(label, minor, [include dirs]) for each installed set of headers."""
    found = []
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for inc in sorted(glob.glob(os.path.join(pyenv, "versions", "3.*", "include", "python3.*"))):
        minor = int(os.path.basename(inc).split(".")[1].rstrip("mdu"))
        found.append(("pyenv " + inc.split(os.sep)[-3], minor, [inc, os.path.join(inc, "internal")]))
    for inc in sorted(glob.glob("/usr/include/python3.*")):
        minor = int(os.path.basename(inc).split(".")[1].rstrip("mdu"))
        found.append(("Debian " + inc, minor, [inc, os.path.join(inc, "internal"), "/usr/include"]))
    for extra in os.environ.get("SWPROF_EXTRA_PYTHON_HEADERS", "").split(":"):
        if extra:
            minor = int(os.path.basename(extra.rstrip("/")).split(".")[1])
            found.append((extra, minor, [extra, os.path.join(extra, "internal"), os.path.dirname(extra)]))
    return found


failures, checked = 0, 0
for label, minor, dirs in header_dirs():
    if minor < 8 or not os.path.exists(os.path.join(dirs[1], "pycore_pystate.h")):
        print("skip: %s (no internal headers, or older than 3.8)" % label)
        continue
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "probe")
        cmd = [cc, "-o", exe, os.path.join(here, "offsets_probe.c")] + ["-I" + d for d in dirs]
        build = subprocess.run(cmd, capture_output=True, text=True)
        if build.returncode != 0:
            print("FAIL: %s: the probe does not compile:\n%s" % (label, build.stderr[-2000:]))
            failures += 1
            continue
        probe = dict(line.split()[:2] for line in subprocess.run([exe], capture_output=True, text=True).stdout.splitlines()[1:])
    ours = dict(line.split() for line in subprocess.run([dump, str(minor)], capture_output=True, text=True).stdout.splitlines())
    diffs = ["%s: headers %s, swprof %s" % (k, v, ours.get(k, "absent")) for k, v in probe.items() if ours.get(k) != v]
    diffs += ["%s: headers absent, swprof %s" % (k, v) for k, v in ours.items()
              if k.startswith("asyncio.") and k not in probe and not k.startswith(PROBED_AT_RUN_TIME)]
    checked += 1
    if diffs:
        failures += 1
        print("FAIL: %s (3.%d):\n  %s" % (label, minor, "\n  ".join(diffs)))
    else:
        print("ok: %s (3.%d): %d offsets agree" % (label, minor, len(probe)))
for name in harness.ALL_PYTHONS:
    python, _ = harness.resolve_python(name)
    if not python:
        print("skip: %s is not installed" % name)
        continue
    run = subprocess.run([python, os.path.join(here, "asyncio_probe.py")], capture_output=True, text=True, timeout=120)
    found = dict(line.split()[:2] for line in run.stdout.splitlines() if line.strip())
    minor = int(subprocess.run([python, "-c", "import sys; print(sys.version_info[1])"], capture_output=True,
                               text=True).stdout)
    ours = dict(line.split() for line in subprocess.run([dump, str(minor)], capture_output=True, text=True).stdout.splitlines())
    expected = {k: v for k, v in ours.items() if k.startswith(PROBED_AT_RUN_TIME)}
    diffs = ["%s: interpreter %s, swprof %s" % (k, found.get(k, "absent"), v) for k, v in expected.items()
             if found.get(k) != v]
    diffs += ["%s: interpreter %s, swprof absent" % (k, v) for k, v in found.items() if k not in expected]
    checked += 1
    if run.returncode != 0 or diffs:
        failures += 1
        print("FAIL: %s (asyncio fields):\n  %s%s" % (name, "\n  ".join(diffs), run.stderr[-2000:]))
    else:
        print("ok: %s (3.%d): %d asyncio fields agree with the running interpreter" % (name, minor, len(found)))
if checked == 0:
    print("SKIP: no CPython headers installed")
    sys.exit(77)
sys.exit(1 if failures else 0)
