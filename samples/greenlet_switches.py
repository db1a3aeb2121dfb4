"""gevent handlers that wait first and compute later, recording their own switches as ground truth.

Each round spawns --handlers greenlets. Handler n first waits, alternately in gevent.sleep and in a
socket read (a feeder greenlet writes to its socket pair later), then spins --cpu-ms, then waits
and spins once more and returns. Every third round one extra greenlet is killed while it sleeps
(GreenletExit thrown into it). greenlet.settrace records every switch the program makes:

    trace <monotonic_ns> <switch|throw> <origin id> <target id> <origin's top frame, qualified>
    greenlet <handler|feeder|sleeper> <greenlet id>     (every greenlet spawned, in spawn order)

    begin <monotonic_ns> / end <monotonic_ns>           (when tracing started and stopped)

(id() of a greenlet is its address; a later greenlet may get the address of one that is gone.) With
--go-file the program prints "ready" and waits for that file before it starts, so that an observer
can attach first. With --warm-up-until FILE it then switches untraced (greenlets that sleep 1 ms in
turn, then finish) until FILE appears, at most 60 s, before it starts tracing: an observer that
learns greenlet's layout from live switches has them however late a busy machine lets it run.

    python3 samples/greenlet_switches.py --rounds 20 --out /tmp/truth.txt
(Debian: apt-get install python3-gevent, then use /usr/bin/python3.11.)
"""
import argparse
import os
import sys
import time

import gevent
import gevent.socket
import greenlet


def spin(ms):
    end = time.thread_time() + ms / 1000.0
    while time.thread_time() < end:
        pass


def wait_sleep(seconds):
    gevent.sleep(seconds)


def wait_read(sock):
    return sock.recv(16)


def handler(n, sock, cpu_ms):
    if sock is None:
        wait_sleep(0.002 + 0.001 * (n % 3))
    else:
        wait_read(sock)
    spin(cpu_ms)
    wait_sleep(0.001)
    spin(cpu_ms)
    return n


def feeder(writers):
    for w in writers:
        gevent.sleep(0.001)
        w.sendall(b"go")


def sleeper():
    gevent.sleep(10)


def warm_up(until_file):
    deadline = time.monotonic() + 60
    while not os.path.exists(until_file) and time.monotonic() < deadline:
        gevent.joinall([gevent.spawn(wait_sleep, 0.001) for _ in range(4)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--handlers", type=int, default=8)
    parser.add_argument("--cpu-ms", type=float, default=1.0)
    parser.add_argument("--go-file")
    parser.add_argument("--warm-up-until")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    if args.go_file:
        print("ready", flush=True)
        while not os.path.exists(args.go_file):
            time.sleep(0.005)
    if args.warm_up_until:
        warm_up(args.warm_up_until)

    events = []
    spawned = []
    clock = time.monotonic_ns
    qualified = sys.version_info >= (3, 11)

    def trace(event, pair):
        origin, target = pair
        frame = origin.gr_frame
        name = (frame.f_code.co_qualname if qualified else frame.f_code.co_name) if frame is not None else "-"
        events.append((clock(), event, id(origin), id(target), name))

    began = clock()
    greenlet.settrace(trace)
    for r in range(args.rounds):
        pairs = [gevent.socket.socketpair() if n % 2 else (None, None) for n in range(args.handlers)]
        group = []
        for n in range(args.handlers):
            g = gevent.spawn(handler, n, pairs[n][0], args.cpu_ms)
            spawned.append(("handler", id(g)))
            group.append(g)
        group.append(gevent.spawn(feeder, [p[1] for p in pairs if p[1] is not None]))
        spawned.append(("feeder", id(group[-1])))
        victim = gevent.spawn(sleeper) if r % 3 == 0 else None
        if victim is not None:
            spawned.append(("sleeper", id(victim)))
        gevent.joinall(group)
        if victim is not None:
            victim.kill()
        for a, b in pairs:
            if a is not None:
                a.close()
                b.close()
    greenlet.settrace(None)
    ended = clock()

    with open(args.out, "w") as f:
        f.write("begin %d\nend %d\n" % (began, ended))
        for e in events:
            f.write("trace %d %s %d %d %s\n" % e)
        for role, ident in spawned:
            f.write("greenlet %s %d\n" % (role, ident))


if __name__ == "__main__":
    main()
