"""Off-CPU reasons from outside (tests/tools/offcpu_reasons.cpp drives src/target/offcpu.cpp) for
threads that each wait on one known thing (samples/offcpu_waits.py), against a real peer: this
script listens on loopback and the program connects to it, and connects to the program's listener.
Every round names exactly what each thread waits on: the system call, and for descriptors the
socket's peer (a client's), the listening address and the client's host (a server's), the unix
socket's path, a pipe, or what an epoll instance watches. And schedstat's run-queue time: a thread
that never waits is, between two reads, on a CPU or waiting for one (cpu + run queue = wall),
while a sleeping thread is neither.
"""
import json
import os
import socket
import subprocess
import threading
import time

import harness
from harness import expect

PROGRAM = os.path.join(harness.SAMPLES, "offcpu_waits.py")


def test(ctx):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    held = []

    def accept_all():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept_all, daemon=True).start()
    unix_path = ctx.path("waits.sock")
    prog = subprocess.Popen([ctx.python, PROGRAM, "--connect", str(port), "--unix-path", unix_path],
                            stdout=subprocess.PIPE, text=True)
    try:
        first = prog.stdout.readline().split()
        expect(first[:1] == ["listening"], "the program listens: %s" % first)
        server_port = int(first[1])
        client = socket.create_connection(("127.0.0.1", server_port))
        roles = json.loads(prog.stdout.readline())
        sleep_call = "clock_nanosleep" if ctx.version >= (3, 11) else "pselect6"  # time.sleep: select() before 3.11
        expected = {
            "recv_client": "recvfrom socket 127.0.0.1:%d" % port,
            "poll_client": "poll socket 127.0.0.1:%d" % port,
            "recv_server": "recvfrom socket 127.0.0.1:%d from 127.0.0.1" % server_port,
            "accept_unix": "accept4 unix socket %s" % unix_path,
            "lock": "futex",
            "sleep": sleep_call,
            "pipe": "read pipe",
            "select": "pselect6 pipe",
            "epoll3": "epoll_wait (3 sockets)",
            "asyncio": "epoll_wait unix socket",
        }
        out = subprocess.run([ctx.args.tool, "--pid", str(prog.pid), "--rounds", "20", "--interval-ms", "20"],
                             capture_output=True, text=True, timeout=120)
        expect(out.returncode == 0, "offcpu_reasons ran: %s" % out.stderr)
        records = [json.loads(l) for l in out.stdout.splitlines()]
        threads = [r for r in records if r["type"] == "thread"]
        summary = next(r for r in records if r["type"] == "summary")
        by_tid = {}
        for r in threads:
            by_tid.setdefault(r["tid"], []).append(r)
        for name, tid in roles.items():
            seen = by_tid.get(tid, [])
            expect(len(seen) == 20, "%s (%d) is read every round" % (name, tid))
            if name == "accept_tcp":
                # The listener's address: whatever port the program got.
                reasons = {r["reason"] for r in seen}
                expect(len(reasons) == 1 and reasons.pop().startswith("accept4 socket listening 127.0.0.1:"),
                       "accept_tcp: %s" % {r["reason"] for r in seen})
                continue
            if name == "spinner":
                continue
            got = {r["reason"] for r in seen}
            expect(got == {expected[name]}, "%s: expected %r, got %s" % (name, expected[name], got))
            expect(all(r["state"] in "SD" for r in seen), "%s is not running" % name)
            print("ok: %-12s %s" % (name, expected[name]))
        # Waiting for a CPU is neither work nor blocking: a thread that never waits is always one of
        # the two (cpu + run queue = wall between reads); a sleeping one neither.
        def growth(name):
            seen = by_tid[roles[name]]
            return tuple(seen[-1][k] - seen[0][k] for k in ("time_ns", "cpu_ns", "runqueue_ns", "timeslices"))
        wall_ns, cpu, queue, slices = growth("spinner")
        print("spinner: cpu %.1f ms + run queue %.1f ms = %.1f ms over %.1f ms, %d time slices"
              % (cpu / 1e6, queue / 1e6, (cpu + queue) / 1e6, wall_ns / 1e6, slices))
        # A running thread's counters are brought up to date at scheduler ticks: each read may lag
        # by one (4 ms at HZ=250).
        expect(abs(cpu + queue - wall_ns) <= 0.05 * wall_ns + 10e6, "the spinner is always on a CPU or waiting for one")
        expect(slices >= 1, "the spinner is given CPUs")
        wall_ns, cpu, queue, _ = growth("sleep")
        expect(cpu + queue < 0.05 * wall_ns, "the sleeper neither works nor waits for a CPU: %d + %d ns" % (cpu, queue))
        reads = summary["reads"]
        print("cost: %d reads (%d still in the same call), warm p50 %.1f us p99 %.1f us, cold p50 %.1f us p99 %.1f us"
              % (reads, summary["same_call"], summary["warm_p50_us"], summary["warm_p99_us"], summary["cold_p50_us"],
                 summary["cold_p99_us"]))
        expect(summary["same_call"] >= reads * 0.8, "a thread still in the same call is not looked at again")
        client.close()
    finally:
        harness.kill_quietly(prog)
        prog.wait()
        listener.close()
        for c in held:
            c.close()


if __name__ == "__main__":
    harness.main(test, __doc__, extra_args=[(("--tool",), {"required": True})])
