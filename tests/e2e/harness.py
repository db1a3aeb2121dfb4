"""Shared helpers for the end-to-end tests: find the interpreter under test, run swprof, read its
JSON, and walk call trees. Every test script takes --swprof PATH --python NAME; a NAME that is not
installed makes the script exit 77 (ctest: skipped) after saying which one and how to get it.
"""
import argparse
import ast
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Deep recursion makes deeply nested JSON trees (two levels per frame): Python's json recursion.
sys.setrecursionlimit(20000)

SOURCE_DIR = os.environ.get("SWPROF_SOURCE_DIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(SOURCE_DIR, "samples")
SKIP = 77

# Python source defining renamed(f, name): gives function f any name (co_name, and co_qualname on
# 3.11+), even one no def could spell, for tests of hostile names.
RENAMED = r"""
def renamed(f, name):
    kw = {"co_name": name}
    if hasattr(f.__code__, "co_qualname"):
        kw["co_qualname"] = name
    f.__code__ = f.__code__.replace(**kw)
    return f
"""
# Every interpreter the suite knows by name (tests/CMakeLists.txt lists the same for the e2e tests).
ALL_PYTHONS = ["pyenv-3.8", "pyenv-3.9", "pyenv-3.10", "pyenv-3.11", "debian-3.11", "pyenv-3.12", "pyenv-3.13",
               "sid-3.14", "sid-3.15"]


def pyenv_root():
    return os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")


def resolve_python(name):
    """pyenv-3.X, debian-3.11, sid-3.14 / sid-3.15, or a path. Returns (path, description)."""
    if os.path.sep in name:
        return (name if os.access(name, os.X_OK) else None), name
    kind, _, version = name.partition("-")
    if kind == "pyenv":
        found = sorted(glob.glob(os.path.join(pyenv_root(), "versions", version + ".*", "bin", "python" + version)))
        return (found[-1] if found else None), "pyenv %s (pyenv install %s)" % (version, version)
    if kind == "debian":
        path = "/usr/bin/python" + version
        return (path if os.access(path, os.X_OK) else None), "Debian python%s (apt-get install python%s)" % (version, version)
    if kind == "sid":
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        path = os.path.join(cache, "swprof", "python-" + version, "bin", "python3")
        return (path if os.access(path, os.X_OK) else None), \
            "Debian sid python%s (../shared/tools/get-python %s)" % (version, version)
    raise SystemExit("unknown interpreter name %r" % name)


class Context:
    def __init__(self, args):
        self.swprof = os.path.abspath(args.swprof)
        self.python_name = args.python
        self.python, self.python_description = resolve_python(args.python)
        self.tmp = tempfile.mkdtemp(prefix="swprof-e2e-")
        self.version = None
        if self.python:
            out = subprocess.run([self.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=60)
            self.version = tuple(int(x) for x in out.stdout.strip().split("."))

    def path(self, name):
        return os.path.join(self.tmp, name)

    def record(self, out, command=None, pid=None, options=(), timeout=120, check=True, env=None):
        argv = [self.swprof, "record", "-q", "-o", out] + list(options)
        if pid:
            argv += ["--pid", str(pid)]
        if command:
            argv += ["--"] + list(command)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError("swprof record failed (%d): %s\n%s" % (proc.returncode, " ".join(argv), proc.stderr))
        return proc

    def analyze_json(self, swp, *options):
        proc = subprocess.run([self.swprof, "analyze", "--format", "json", swp] + list(options),
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise AssertionError("swprof analyze failed: %s" % proc.stderr)
        return json.loads(proc.stdout)

    def record_with_client(self, out, program, client, options=(), timeout=120):
        """Records `program` (the argv after --) while `client` (an argv) drives it, e.g. a server
        and the requests it is to handle. Returns (swprof's stderr, the client's stdout)."""
        rec = subprocess.Popen([self.swprof, "record", "-q", "-o", out] + list(options) + ["--"] + list(program),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            drive = subprocess.run(client, capture_output=True, text=True, timeout=timeout)
            _, err = rec.communicate(timeout=timeout)
        finally:
            kill_quietly(rec)
        if drive.returncode != 0:
            raise AssertionError("client %s failed: %s" % (" ".join(client), drive.stderr))
        if rec.returncode != 0:
            raise AssertionError("swprof record exited %d: %s" % (rec.returncode, err))
        return err, drive.stdout

    def run_swprof(self, *args, timeout=120, **kwargs):
        return subprocess.run([self.swprof] + list(args), capture_output=True, text=True, timeout=timeout, **kwargs)

    def artifact(self, name):
        """A path for a file kept after the test for people to look at (screenshots): in
        $SWPROF_ARTIFACT_DIR (ctest: <build>/test-artifacts), named after the test and interpreter."""
        folder = os.environ.get("SWPROF_ARTIFACT_DIR") or os.path.join(tempfile.gettempdir(), "swprof-test-artifacts")
        os.makedirs(folder, exist_ok=True)
        test = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        return os.path.join(folder, "%s-%s-%s" % (test, self.python_name, name))

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def main(test, description, extra_args=None):
    """Runs test(ctx). Skips (77) when the interpreter is missing; prints a clear failure."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--swprof", required=True)
    parser.add_argument("--python", required=True)
    for a in extra_args or []:
        parser.add_argument(*a[0], **a[1])
    args = parser.parse_args()
    ctx = Context(args)
    ctx.args = args
    if not ctx.python:
        print("SKIP: %s is not installed here: %s" % (args.python, ctx.python_description))
        sys.exit(SKIP)
    print("interpreter: %s -> %s (%s)" % (args.python, ctx.python, ".".join(map(str, ctx.version))))
    try:
        test(ctx)
    except AssertionError as e:
        print("FAIL: %s" % e)
        print("(scratch files kept in %s)" % ctx.tmp)
        sys.exit(1)
    ctx.cleanup()
    print("PASS")


# --- call trees -----------------------------------------------------------------------------

def short(function):
    """Qualified name as this interpreter reports it: 3.11+ has co_qualname, older only co_name."""
    return function


def name_matches(node, name, version):
    fn = node["function"]
    if version >= (3, 11):
        return fn == name
    return fn == name.rsplit(".", 1)[-1]


def find_path(roots, names, version, start_anywhere=True):
    """The node reached by following `names` (qualified names) downwards. With start_anywhere the
    first name may be at any depth. Returns the node list of the path, or None."""
    def follow(node, rest):
        if not rest:
            return []
        for child in node["children"]:
            if name_matches(child, rest[0], version):
                tail = follow(child, rest[1:])
                if tail is not None:
                    return [child] + tail
        return None

    def search(nodes):
        for n in nodes:
            if name_matches(n, names[0], version):
                tail = follow(n, names[1:])
                if tail is not None:
                    return [n] + tail
            if start_anywhere:
                found = search(n["children"])
                if found:
                    return found
        return None

    return search(roots)


def all_nodes(roots):
    stack = list(roots)
    while stack:
        n = stack.pop()
        yield n
        stack.extend(n["children"])


def def_lines(path):
    """{qualified name: def line} for every function in a source file (decorators excluded)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                q = prefix + child.name
                out[q] = child.lineno
                visit(child, q + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
    visit(tree, "")
    return out


def line_of(path, text, occurrence=1):
    """Line number of the `occurrence`-th line containing `text`."""
    seen = 0
    for i, line in enumerate(open(path, encoding="utf-8"), 1):
        if text in line:
            seen += 1
            if seen == occurrence:
                return i
    raise AssertionError("%r not found in %s" % (text, path))


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_close(value, expected, tolerance, what):
    if abs(value - expected) > tolerance:
        raise AssertionError("%s: %.1f, expected %.1f ± %.1f" % (what, value, expected, tolerance))
    print("ok: %s = %.1f (expected %.1f ± %.1f)" % (what, value, expected, tolerance))


def duration_max_ms(segment):
    """The longest the segment's call can have lasted: unbounded (null) for a call already running
    when the recording first read its thread."""
    m = segment["duration_max_ms"]
    return float("inf") if m is None else m


def expect_duration(segment, measured_ms, what, jitter_ms=0.5, unmeasured_ms=0.0):
    """The call's real duration (measured by the program itself) lies within what sampling allows
    for the segment: it began between two samples of its thread and ended between two others
    (duration_min_ms .. duration_max_ms), plus the timer's jitter. On a quiet machine that is
    one interval either way; when the recorder is held up, as wide as the samples were apart.
    `unmeasured_ms`: how much of the call the program's own measurement can miss (its last
    statements, after it took the time)."""
    lo, hi = segment["duration_min_ms"] - jitter_ms - unmeasured_ms, duration_max_ms(segment) + jitter_ms
    if not lo <= measured_ms <= hi:
        raise AssertionError("%s: measured %.1f ms, the segment allows %.1f .. %.1f ms (shown %.1f)"
                             % (what, measured_ms, lo, hi, segment["duration_ms"]))
    print("ok: %s: measured %.1f ms within %.1f .. %.1f ms (shown %.1f)" % (what, measured_ms, lo, hi, segment["duration_ms"]))


def seed_timings(path):
    """samples/seed_server.py --timings-file's records, in the order the requests finished: per
    request the handler's OS thread id, its whole time (reply written) and its methods' and
    sleep's own times: [{"thread": 1234, "handler_ms": 561.9, "method3": 60.2, ...}, ...]."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def unmeasured_ms(recording, base_ms=1.0):
    """How much of a call its handler's own clock can miss: the statements before it first reads
    the clock and after it last does (`base_ms`), and on a busy machine a
    preemption there. How long preemptions were is read off the recorder's own late samples,
    which the same scheduler delayed: nothing on a quiet machine. (CI: a seed_server request's
    last sample caught it in flush_headers, 2 ms after its clock stopped, with samples 15 ms
    apart.)"""
    return base_ms + max(0.0, recording["weight_max_ms"] - recording["interval_ms"])


def sampling_tolerance(doc, transitions, competes_for_cpu=False):
    """How far a function's total may be from what the program measured, from the recording's own
    data. A sample weighs the time since its thread's previous sample and lands on whichever
    function runs at that instant, so each switch between two functions moves up to one weight
    across. When both sides sleep (or both spin) the direction is random: three deviations
    (weight/sqrt(3) each) of the sum over `transitions` switches, plus one weight. When one side
    uses the CPU and the other does not (`competes_for_cpu`), a busy machine gives the recorder the
    CPU just as the program stops using it: late samples then land after the switch, all in one
    direction, each moving up to its lateness; the recording's heaviest sample bounds that. On a
    quiet machine the weights are the interval and the tolerance is tight; a busy machine gets what
    its data justifies, and time going to the wrong function still fails."""
    rec = doc["recording"]
    tolerance = rec["weight_mean_ms"] * (1 + (3 * transitions) ** 0.5)
    # Time the recorder was held up beyond two intervals is charged to no function (<not sampled>
    # under the frames common to both sides): a function may be short of its measure by that much.
    tolerance += rec.get("not_sampled_ms", 0.0)
    if competes_for_cpu:
        tolerance += transitions * max(0.0, rec["weight_max_ms"] - rec["interval_ms"])
    return tolerance


def serve_under_ab(rec, port, stats, requests, concurrency):
    """Drives a sample server being recorded by `rec` (a Popen of swprof record) with
    `ab -n requests -c concurrency` once it has written its port to `port`, asks it for its stats
    (POST /stats: it writes them to `stats` and exits) and waits for the recording. Returns
    (swprof's summary, the handlers' own records from `stats`)."""
    try:
        wait_for_file(port)
        url = "http://127.0.0.1:%s/" % open(port).read().strip()
        run_ab(url, requests, concurrency)
        subprocess.run(["curl", "-s", "-X", "POST", url + "stats"], check=True, timeout=30)
        _, summary = rec.communicate(timeout=60)
    finally:
        kill_quietly(rec)
    expect(rec.returncode == 0, "swprof record: %s" % summary)
    return summary, [json.loads(l) for l in open(stats)]


def wait_for_file(path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path) > 0:
            return
        time.sleep(0.02)
    raise AssertionError("%s did not appear within %.0fs" % (path, timeout))


def free_port():
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_of(pid):
    """The pids of `pid`'s children (every thread's)."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        out += [int(c) for c in open("/proc/%d/task/%s/children" % (pid, tid)).read().split()]
    return out


def record_gunicorn(ctx, out, log, workers, interval, drive):
    """Debian's gunicorn with `workers` sync workers serving samples/wsgi_app.py (each request
    appended to `log`), recorded into `out` with --subprocesses --entry on the app's handle at
    `interval` from when the workers wait for requests; `drive(url, rec)` sends the requests (rec:
    the swprof Popen). Stops the recording with SIGINT as a user does. Returns record's summary."""
    gunicorn, port = shutil.which("gunicorn"), free_port()
    server = subprocess.Popen([ctx.python, gunicorn, "-w", str(workers), "-b", "127.0.0.1:%d" % port, "--chdir", SAMPLES,
                               "wsgi_app:app"], env=dict(os.environ, WSGI_APP_LOG=log),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rec = None
    try:
        deadline = time.monotonic() + 30
        while len(children_of(server.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.05)
        started = children_of(server.pid)
        expect(len(started) == workers, "gunicorn started %d workers: %s" % (workers, started))
        time.sleep(0.5)  # the workers import the app and wait for requests
        # (The app's handle, by file: gunicorn's SyncWorker has a handle of its own.)
        rec = subprocess.Popen([ctx.swprof, "record", "-q", "--subprocesses", "--entry", "wsgi_app.py:handle", "-i", interval,
                                "--pid", str(server.pid), "-o", out], stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)  # attached, the workers found
        drive("http://127.0.0.1:%d/" % port, rec)
        rec.send_signal(signal.SIGINT)
        _, summary = rec.communicate(timeout=60)
        expect(rec.returncode == 0, "swprof record: %s" % summary)
        return summary
    finally:
        for p in (rec, server):
            if p is not None:
                kill_quietly(p, signal.SIGTERM)
                p.wait()


def run_ab(url, requests, concurrency):
    """ab (apache2-utils) sending `requests` requests, `concurrency` at a time; all must succeed."""
    ab = subprocess.run(["ab", "-q", "-n", str(requests), "-c", str(concurrency), url],
                        capture_output=True, text=True, timeout=120)
    expect(ab.returncode == 0 and "Failed requests:        0" in ab.stdout, "ab: %s %s" % (ab.stdout[-400:], ab.stderr))


def kill_quietly(proc, sig=signal.SIGKILL):
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
