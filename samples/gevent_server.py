"""gevent: many requests on one OS thread. A StreamServer whose handler reads a request number n
and runs job_n (a distinct function per request): 20 ms of CPU work, then 3 x 50 ms of
gevent.sleep. The handler measures its own wall time and CPU time and sends them back.

    python3 samples/gevent_server.py --port 0 --port-file /tmp/port --requests 10 &
    python3 samples/gevent_client.py --port-file /tmp/port --count 10
(Debian: apt-get install python3-gevent, then use /usr/bin/python3.11.)
"""
import argparse
import os
import sys
import time

import gevent
from gevent.server import StreamServer

JOBS = 10


CPU_MS = {}  # per job: CPU time of its work (it never yields while working, so this is its own)


def cpu_work(seconds):
    start = time.thread_time()
    end = start + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return (time.thread_time() - start) * 1000


def make_job(n):
    def job():
        CPU_MS[n] = cpu_work(0.020)
        for _ in range(3):
            gevent.sleep(0.050)
    job.__name__ = job.__qualname__ = "job_%d" % n
    job.__code__ = job.__code__.replace(co_name="job_%d" % n, **({"co_qualname": "job_%d" % n}
                                                                  if sys.version_info >= (3, 11) else {}))
    return job


JOB = [make_job(n) for n in range(JOBS)]


def handle(sock, address):
    started = time.monotonic()  # the whole call, reading the request (a wait) included
    n = int(sock.makefile("rb").readline())
    JOB[n % JOBS]()
    wall_ms = (time.monotonic() - started) * 1000
    sock.sendall(b"%d %.3f %.3f\n" % (n, wall_ms, CPU_MS[n % JOBS]))
    sock.close()
    handle.count += 1
    if handle.count >= handle.limit:
        handle.done.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--port-file")
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    handle.count, handle.limit = 0, args.requests
    handle.done = gevent.event.Event()
    server = StreamServer(("127.0.0.1", args.port), handle)
    server.start()
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(server.server_port))
        os.replace(args.port_file + ".tmp", args.port_file)
    handle.done.wait()
    server.stop()


if __name__ == "__main__":
    import gevent.event  # noqa: F401
    main()
