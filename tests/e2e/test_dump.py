"""swprof dump against programs in known states, on every interpreter.

- A deadlock between two threads (samples/deadlock.py): both threads are listed by name, each
  stopped in its own function at the line of its second `with lock`, in a futex wait, without the
  GIL; the text names both waits.
- A stopped process (SIGSTOP): every thread reads as stopped, in one attempt, never torn, at the
  line it was stopped in; two dumps of it are the same.
- Known locals (samples/known_locals.py, --locals): each simple value is shown exactly as the
  program's own repr() of it; containers by their length, a self-referential list as one, a huge
  int and a 100,000-character str bounded, a cell variable and an argument captured by an inner
  function with their values, others by their type's name.
- asyncio (samples/asyncio_handlers.py --threads 2): every task under the thread running its loop,
  with the await chain, awaited object and awaiting tasks the program reports of itself.
- A thread whose stack changes all the time (recursing up and down): dumped 20 times, it is
  either a confirmed stack of the program's own functions, one marked torn (its steady outer
  frames only, said in the text), or (rarely, at most 5 of 20) no frames and the error saying it
  changed during every read; never a frame that is not the program's.
- Threads waiting on sockets: one in recvfrom on a TCP connection, shown with the addresses the
  program reports, one in accept4 on its listening socket.
- Hostile names (a function named with a terminal escape, a newline and a bidi override, a file
  whose name is not UTF-8, a thread named with an escape): visible escapes in the text, no raw
  control byte; exact in JSON, the file's bytes in file_base64.
- 100 threads waiting (samples/many_threads.py): all listed with their stacks; the time the dump
  took is printed (the bench, tests/bench/dump_bench.py, holds the latency to its bound).
- Every --format json document is checked against the contract in src/live/dump_json.cpp.
"""
import base64
import json
import os
import signal
import subprocess
import time

import harness
from harness import expect

DEADLOCK = os.path.join(harness.SAMPLES, "deadlock.py")
LOCALS = os.path.join(harness.SAMPLES, "known_locals.py")
ASYNCIO = os.path.join(harness.SAMPLES, "asyncio_handlers.py")
MANY = os.path.join(harness.SAMPLES, "many_threads.py")

FRAME = {"function": str, "file": str, "line": int}
LOCAL = {"name": str, "kind": str, "type": str, "value": str}
GREENLET = {"address": str, "type": str, "main": bool, "frames_read": bool, "frames": list}
TASK = {"address": str, "name": str, "state": str, "running": bool, "awaiting": (str, type(None)),
        "awaiting_task": (str, type(None)), "awaited_by": list, "frames": list}
SYSCALL = {"name": str, "number": int, "detail": str}
THREAD = {"native_id": int, "target_id": int, "ident": int, "name": (str, type(None)), "gil": bool, "state": str,
          "on_cpu": bool, "syscall": (dict, type(None)), "wchan": str, "stack_read": bool, "torn": bool,
          "attempts": int, "error": (str, type(None)), "frames": list, "greenlets": list, "tasks": list}
DUMP = {"pid": int, "command": list, "python": str, "build": str, "time_unix_us": int, "read_ms": (int, float),
        "threads": list, "greenlets": list, "tasks": list, "notes": list}


def check_keys(obj, schema, where):
    expect(isinstance(obj, dict), "%s is an object: %r" % (where, obj))
    expect(set(schema) <= set(obj), "%s has %s (missing %s)" % (where, sorted(schema), sorted(set(schema) - set(obj))))
    for key, kind in schema.items():
        expect(isinstance(obj[key], kind), "%s.%s is %s: %r" % (where, key, kind, obj[key]))


def check_frames(frames, where, with_locals):
    for i, f in enumerate(frames):
        check_keys(f, FRAME, "%s.frames[%d]" % (where, i))
        expect(("locals" in f) == with_locals, "%s.frames[%d] has locals only with --locals" % (where, i))
        for k, l in enumerate(f.get("locals", [])):
            check_keys(l, LOCAL, "%s.frames[%d].locals[%d]" % (where, i, k))
            expect(l["kind"] in ("arg", "local", "cell", "free"), "a local's kind: %r" % l["kind"])


def check_extras(obj, where, with_locals):
    for i, g in enumerate(obj["greenlets"]):
        check_keys(g, GREENLET, "%s.greenlets[%d]" % (where, i))
        check_frames(g["frames"], "%s.greenlets[%d]" % (where, i), with_locals)
    for i, t in enumerate(obj["tasks"]):
        check_keys(t, TASK, "%s.tasks[%d]" % (where, i))
        check_frames(t["frames"], "%s.tasks[%d]" % (where, i), with_locals)


def check_schema(doc, with_locals=False):
    """The --format json contract (src/live/dump_json.cpp), every key and its type."""
    check_keys(doc, DUMP, "dump")
    for i, t in enumerate(doc["threads"]):
        where = "threads[%d]" % i
        check_keys(t, THREAD, where)
        expect(len(t["state"]) == 1, "%s.state is one letter" % where)
        if t["syscall"] is not None:
            check_keys(t["syscall"], SYSCALL, where + ".syscall")
        check_frames(t["frames"], where, with_locals)
        check_extras(t, where, with_locals)
    check_extras(doc, "dump", with_locals)
    expect(all(isinstance(n, str) for n in doc["notes"]), "notes are strings")


def dump(ctx, pid, *options):
    proc = ctx.run_swprof("dump", "--pid", str(pid), *options, timeout=60)
    expect(proc.returncode == 0, "swprof dump failed (%d): %s" % (proc.returncode, proc.stderr))
    if "json" in options:
        doc = json.loads(proc.stdout)
        check_schema(doc, "--locals" in options)
        return doc
    return proc.stdout


def start(ctx, argv, ready):
    program = subprocess.Popen([ctx.python] + argv + ["--ready-file", ready], stdout=subprocess.PIPE, text=True)
    harness.wait_for_file(ready, 60)
    return program


def thread_named(doc, name):
    found = [t for t in doc["threads"] if t["name"] == name]
    expect(len(found) == 1, "one thread named %s: %s" % (name, [t["name"] for t in doc["threads"]]))
    return found[0]


def deadlock(ctx):
    program = start(ctx, [DEADLOCK], ctx.path("deadlock.ready"))
    try:
        doc = dump(ctx, program.pid, "--format", "json")
        expect(len(doc["threads"]) == 3, "three threads: %s" % [t["name"] for t in doc["threads"]])
        for name, function, lock in (("a-then-b", "take_a_then_b", "lock_b"), ("b-then-a", "take_b_then_a", "lock_a")):
            t = thread_named(doc, name)
            leaf = t["frames"][-1]
            line = harness.line_of(DEADLOCK, "with %s:  # waits" % lock)
            expect(leaf["function"] == function and leaf["line"] == line,
                   "%s waits in %s at line %d: %s" % (name, function, line, leaf))
            expect(t["syscall"] and t["syscall"]["name"] == "futex" and t["syscall"]["detail"].startswith("wait"),
                   "%s is in a futex wait: %s" % (name, t["syscall"]))
            expect(t["state"] == "S" and not t["gil"] and not t["torn"], "%s sleeps without the GIL: %s" % (name, t))
        main = doc["threads"][0]
        expect(main["native_id"] == program.pid and main["name"] == "MainThread", "the main thread first: %s" % main)
        expect([f["function"] for f in main["frames"]][:2] == ["<module>", "main"], "main's stack: %s" % main["frames"])
        text = dump(ctx, program.pid)
        waits = [l for l in text.splitlines() if l.startswith("Thread ") and "futex wait" in l]
        expect(any('"a-then-b"' in l for l in waits) and any('"b-then-a"' in l for l in waits),
               "the text names both lock waits:\n%s" % text)
        print("ok: deadlock: both threads in a futex wait at their second `with`; %.1f ms" % doc["read_ms"])
    finally:
        program.kill()
        program.wait()


SPIN = r"""
import sys, threading, time
def spin():
    n = 0
    while True:
        n += 1
def nap():
    while True:
        time.sleep(0.2)
threading.Thread(target=spin, name="spinner", daemon=True).start()
open(sys.argv[1], "w").write("ready\n")
nap()
"""


def stopped(ctx):
    ready = ctx.path("spin.ready")
    program = subprocess.Popen([ctx.python, "-c", SPIN, ready])
    try:
        harness.wait_for_file(ready, 60)
        time.sleep(0.2)
        os.kill(program.pid, signal.SIGSTOP)
        time.sleep(0.2)
        first = dump(ctx, program.pid, "--format", "json")
        second = dump(ctx, program.pid, "--format", "json")
        for t in first["threads"]:
            expect(t["state"] == "T" and t["stack_read"] and t["attempts"] == 1 and not t["torn"],
                   "a stopped thread reads at once: %s" % t)
        spinner = thread_named(first, "spinner")
        expect(spinner["frames"][-1]["function"] == "spin", "the spinner stopped in spin: %s" % spinner["frames"])
        expect(thread_named(first, "MainThread")["frames"][-1]["function"] == "nap", "main stopped in nap")
        strip = lambda d: [(t["native_id"], t["frames"], t["state"], t["gil"]) for t in d["threads"]]
        expect(strip(first) == strip(second), "two dumps of a stopped process are the same")
        text = dump(ctx, program.pid)
        expect(text.count("stopped (SIGSTOP)") == 2, "the text says both threads are stopped:\n%s" % text)
        print("ok: stopped process: every thread read at once, the same twice")
    finally:
        program.kill()
        program.wait()


def known_locals(ctx):
    program = start(ctx, [LOCALS], ctx.path("locals.ready"))
    try:
        truth = json.loads(program.stdout.readline())
        doc = dump(ctx, program.pid, "--format", "json", "--locals")
        holder = [f for f in doc["threads"][0]["frames"] if f["function"] == "holder"]
        expect(len(holder) == 1, "holder is on the main thread's stack: %s" % doc["threads"][0]["frames"])
        shown = {l["name"]: l for l in holder[0]["locals"]}
        for name, value in truth.items():
            expect(name in shown and shown[name]["value"] == value,
                   "%s = %s, the program's repr is %s" % (name, shown.get(name, {}).get("value"), value))
        expected = {"items": "<list, 3 items>", "table": "<dict, 2 items>", "pair": "<tuple, 2 items>",
                    "members": "<set, 2 items>", "loop": "<list, 1 item>", "widget": "<Widget>",
                    "captured": "'by the inner function'", "ready_file": repr(ctx.path("locals.ready"))}
        for name, value in expected.items():
            expect(shown.get(name, {}).get("value") == value, "%s = %s, expected %s" % (name, shown.get(name), value))
        expect(shown["long_text"]["value"] == "'%s'... (100000 characters)" % ("x" * 64), "a long str, bounded")
        expect(shown["huge"]["value"].startswith("<int of about 2"), "a huge int, bounded: %s" % shown["huge"])
        expect(shown["ready_file"]["kind"] == "arg" and shown["captured"]["kind"] == "cell",
               "kinds: %s, %s" % (shown["ready_file"], shown["captured"]))
        expect(all(l["type"] for l in holder[0]["locals"]), "every local has its type's name")
        text = dump(ctx, program.pid, "--locals")
        expect("        answer = 42\n" in text and "        word = 'hello'\n" in text, "the text lists locals:\n%s" % text)
        print("ok: %d locals of holder shown as the program sees them" % len(shown))
    finally:
        program.kill()
        program.wait()


def asyncio_tasks(ctx):
    truth_path = ctx.path("truth.json")
    program = subprocess.Popen([ctx.python, ASYNCIO, "--truth", truth_path, "--threads", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        harness.wait_for_file(truth_path, 60)
        with open(truth_path, encoding="utf-8") as f:
            truth = json.load(f)
        doc = dump(ctx, program.pid, "--format", "json")
        found = {}
        for t in doc["threads"]:
            for task in t["tasks"]:
                found[task["name"]] = (t, task)
        expect(not doc["tasks"], "every task is under its thread: %s" % [t["name"] for t in doc["tasks"]])
        expect(sorted(found) == sorted(t["name"] for t in truth["tasks"]),
               "tasks %s, the program has %s" % (sorted(found), sorted(t["name"] for t in truth["tasks"])))
        for want in truth["tasks"]:
            thread, got = found[want["name"]]
            expect(thread["ident"] == want["thread_id"] and thread["native_id"] == want["native_id"],
                   "%s is under thread %s, the program says %s" % (want["name"], thread["native_id"], want["native_id"]))
            expect(got["state"] == want["state"] and got["running"] == want["running"], "%s: %s" % (want["name"], got))
            if not want["running"]:
                expect(got["frames"] == want["frames"], "%s: await chain\n  %s\nthe program says\n  %s" % (
                    want["name"], got["frames"], want["frames"]))
            if want["awaiting"]:
                expect(got["awaiting"] == want["awaiting"]["type"] and got["awaiting_task"] == want["awaiting"]["task"],
                       "%s awaits %s %s, the program says %s" % (want["name"], got["awaiting"], got["awaiting_task"],
                                                                 want["awaiting"]))
            expect(sorted(got["awaited_by"]) == want["awaited_by"],
                   "%s awaited by %s, the program says %s" % (want["name"], got["awaited_by"], want["awaited_by"]))
        print("ok: %d asyncio tasks under their threads, as the program sees them" % len(found))
    finally:
        program.kill()
        program.wait()


CHURN = r"""
import sys, threading, time
def descend(n):
    if n:
        return descend(n - 1)
    return n
def churn():
    k = 0
    while True:
        descend(k % 60)
        k += 1
threading.Thread(target=churn, name="churner", daemon=True).start()
open(sys.argv[1], "w").write("ready\n")
time.sleep(3600)
"""


def churning(ctx):
    ready = ctx.path("churn.ready")
    program = subprocess.Popen([ctx.python, "-c", CHURN, ready])
    try:
        harness.wait_for_file(ready, 60)
        allowed = {"descend", "churn", "run", "_bootstrap", "_bootstrap_inner"}
        torn = changing = 0
        for _ in range(20):
            proc = ctx.run_swprof("dump", "--pid", str(program.pid), "--format", "json", timeout=60)
            expect(proc.returncode == 0, "dump of a churning stack: %s" % proc.stderr)
            doc = json.loads(proc.stdout)
            check_schema(doc)
            t = thread_named(doc, "churner")
            # On a busy machine a read can lose every race with the recursion (3.8–3.10 read frame
            # objects one by one): then the dump says so, and no frames are made up.
            if not t["stack_read"]:
                expect(t["error"].startswith("it changed during each of") and not t["frames"],
                       "a stack that changed during every read says so: %s" % t)
                changing += 1
                continue
            expect(not t["error"], "a read stack has no error: %s" % t)
            functions = {f["function"].rsplit(".", 1)[-1] for f in t["frames"]}
            expect(functions <= allowed, "only the program's functions: %s" % functions)
            torn += t["torn"]
            if t["torn"]:
                expect(t["attempts"] >= 5 and t["frames"], "a torn stack keeps its steady outer frames: %s" % t)
        text = dump(ctx, program.pid)
        expect("churner" in text, "the text lists the churner")
        expect(changing <= 5, "the churning stack is read in most dumps: %d of 20 changed during every read" % changing)
        print("ok: a churning stack dumped 20 times: %d confirmed, %d torn (kept its outer frames), %d changed during "
              "every read" % (20 - torn - changing, torn, changing))
    finally:
        program.kill()
        program.wait()


# A thread waiting for data on a TCP connection and one waiting for a connection: the system call
# each waits in, with the socket's addresses as the program itself sees them.
SOCKETS = r"""
import json, socket, sys, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
client = socket.create_connection(server.getsockname())
accepted, _ = server.accept()
threading.Thread(target=lambda: client.recv(100), name="reader", daemon=True).start()
threading.Thread(target=lambda: server.accept(), name="acceptor", daemon=True).start()
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump({"local": "%s:%d" % client.getsockname(), "remote": "%s:%d" % client.getpeername()}, f)
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
threading.Event().wait()
"""


def socket_waits(ctx):
    ready = ctx.path("sockets.ready")
    program = subprocess.Popen([ctx.python, "-c", SOCKETS, ready])
    try:
        harness.wait_for_file(ready, 60)
        addresses = json.load(open(ready))
        deadline = time.monotonic() + 30
        while True:  # the threads reach their calls a moment after the file is written
            doc = dump(ctx, program.pid, "--format", "json")
            reader, acceptor = thread_named(doc, "reader"), thread_named(doc, "acceptor")
            calls = [(t["syscall"] or {}).get("name") for t in (reader, acceptor)]
            if calls == ["recvfrom", "accept4"] or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        expect(calls == ["recvfrom", "accept4"], "reader in recvfrom, acceptor in accept4: %s" % calls)
        detail = reader["syscall"]["detail"]
        expect("TCP socket %s -> %s" % (addresses["local"], addresses["remote"]) in detail,
               "the reader's socket as the program sees it (%s): %s" % (addresses, detail))
        expect("listening on %s" % addresses["remote"] in acceptor["syscall"]["detail"],
               "the acceptor's listening socket: %s" % acceptor["syscall"]["detail"])
        text = dump(ctx, program.pid)
        expect("sleeping in recvfrom on fd" in text, "the text says the reader waits in recvfrom:\n" + text)
        print("ok: sockets: recvfrom %s, accept4 on the listening socket" % detail)
    finally:
        program.kill()
        program.wait()


# A function named with a terminal escape, a newline and a bidirectional override, in a file
# whose name is not UTF-8, waiting: the text shows them as visible escapes (no raw control byte
# reaches the terminal), the JSON carries the name losslessly and the file's exact bytes in
# "file_base64".
HOSTILE_NAME = "red\x1b[31m\nline\u202eevil"
HOSTILE_FILE = b"odd_\xff name.py"
HOSTILE = harness.RENAMED + r"""
import sys, threading
def waits():
    threading.Event().wait()
renamed(waits, %r)
threading.Thread(target=waits, name="hostile\x1b[2J", daemon=True).start()
open(sys.argv[1], "w").write("ready\n")
threading.Event().wait()
""" % HOSTILE_NAME


def hostile_names(ctx):
    script = os.path.join(os.fsencode(ctx.tmp), HOSTILE_FILE)
    with open(script, "w") as f:
        f.write(HOSTILE)
    ready = ctx.path("hostile.ready")
    program = subprocess.Popen([os.fsencode(ctx.python), script, os.fsencode(ready)])
    try:
        harness.wait_for_file(ready, 60)
        proc = subprocess.run([ctx.swprof, "dump", "--pid", str(program.pid)], capture_output=True, timeout=60)
        expect(proc.returncode == 0, "dump of hostile names: %s" % proc.stderr)
        text = proc.stdout
        expect(not any(c < 0x20 and c != 0x0A for c in text) and b"\xe2\x80\xae" not in text and b"\xff" not in text,
               "no raw control character, override or stray byte in the text:\n%r" % text)
        expect(b"red\\x1b[31m\\x0aline\\u202eevil (" in text, "the function as visible escapes:\n%s" % text.decode())
        expect(b"odd_\\xff name.py:" in text and b'"hostile\\x1b[2J"' in text,
               "the file and the thread name as visible escapes:\n%s" % text.decode())
        doc = dump(ctx, program.pid, "--format", "json")
        t = thread_named(doc, "hostile\x1b[2J")
        ours = [f for f in t["frames"] if f["function"] == HOSTILE_NAME]
        expect(len(ours) == 1, "the JSON name is exact: %r" % [f["function"] for f in t["frames"]])
        inner = ours[0]
        expect(base64.b64decode(inner["file_base64"]) == script and "function_base64" not in inner,
               "the file's exact bytes in file_base64 (and no twin for a UTF-8 name): %r" % inner)
        print("ok: hostile names: visible escapes in the text, exact in JSON (file_base64)")
    finally:
        program.kill()
        program.wait()


def many_threads(ctx):
    program = start(ctx, [MANY, "100"], ctx.path("many.ready"))
    try:
        doc = dump(ctx, program.pid, "--format", "json")
        waiters = [t for t in doc["threads"] if t["name"] and t["name"].startswith("waiter-")]
        expect(len(waiters) == 100, "100 waiting threads listed: %d" % len(waiters))
        for t in waiters:
            functions = [f["function"].rsplit(".", 1)[-1] for f in t["frames"]]
            expect(functions[-5:-2] == ["level1", "level2", "level3"], "%s: %s" % (t["name"], functions))
        print("ok: 101 threads dumped in %.1f ms (read_ms; the bench holds the bound)" % doc["read_ms"])
    finally:
        program.kill()
        program.wait()


def test(ctx):
    deadlock(ctx)
    stopped(ctx)
    known_locals(ctx)
    asyncio_tasks(ctx)
    churning(ctx)
    socket_waits(ctx)
    hostile_names(ctx)
    many_threads(ctx)


if __name__ == "__main__":
    harness.main(test, __doc__)
