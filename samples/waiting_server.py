"""A server whose handlers wait before they compute, as real handlers do: each request awaits two
"database calls" (a 30 ms sleep each), then runs job_N, a function of its own for request N (10 ms
of CPU), and times itself. aiohttp (asyncio) or gevent's WSGI server, one event loop thread.

    python3 samples/waiting_server.py --kind aiohttp --port 8080
    ab -n 40 -c 10 http://127.0.0.1:8080/
    curl -X POST http://127.0.0.1:8080/stats     # write the handlers' own timings, then exit

Options: --port-file F (write the chosen port), --stats-file F (where POST /stats writes one JSON
line per request: its number, job, start, end and duration in ms).
"""
import argparse
import json
import os
import sys
import time

WAIT_S = 0.030
CPU_S = 0.010
JOBS = 10
records = []
counter = [0]


def cpu_work(seconds):
    end = time.thread_time() + seconds
    n = 0
    while time.thread_time() < end:
        n += 1
    return n


def make_job(n):
    def job():
        return cpu_work(CPU_S)
    job.__name__ = "job_%d" % n
    job.__code__ = job.__code__.replace(co_name="job_%d" % n, **({"co_qualname": "job_%d" % n}
                                                                  if sys.version_info >= (3, 11) else {}))
    if sys.version_info >= (3, 11):
        job.__qualname__ = "job_%d" % n
    return job


JOB = [make_job(n) for n in range(JOBS)]


def write_stats(path):
    with open(path, "w") as f:
        for n, start, end in records:
            f.write(json.dumps({"request": n, "job": "job_%d" % (n % JOBS), "start": start, "end": end,
                                "ms": (end - start) * 1000}) + "\n")


def announce(port, args):
    print("waiting server (%s) on port %d (pid %d)" % (args.kind, port, os.getpid()), flush=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)


def run_aiohttp(args):
    import asyncio
    from aiohttp import web

    async def handle(request):
        started = time.monotonic()
        n = counter[0]
        counter[0] += 1
        for _ in range(2):
            await asyncio.sleep(WAIT_S)
        JOB[n % JOBS]()
        records.append((n, started, time.monotonic()))
        return web.Response(text="job_%d\n" % (n % JOBS))

    async def stats(request):
        write_stats(args.stats_file)
        asyncio.get_running_loop().call_later(0.05, stop[0].set)
        return web.Response(text="")

    stop = [None]

    async def main():
        stop[0] = asyncio.Event()
        app = web.Application()
        app.router.add_get("/", handle)
        app.router.add_post("/stats", stats)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port)
        await site.start()
        announce(site._server.sockets[0].getsockname()[1], args)
        await stop[0].wait()
        await runner.cleanup()

    asyncio.run(main())


def run_gevent(args):
    from gevent import monkey
    monkey.patch_all()
    import gevent
    from gevent.pywsgi import WSGIServer

    def handle(environ, start_response):
        if environ["REQUEST_METHOD"] == "POST":
            write_stats(args.stats_file)
            gevent.spawn_later(0.05, server.stop)
            start_response("200 OK", [("Content-Length", "0")])
            return [b""]
        started = time.monotonic()
        n = counter[0]
        counter[0] += 1
        for _ in range(2):
            gevent.sleep(WAIT_S)
        JOB[n % JOBS]()
        records.append((n, started, time.monotonic()))
        body = b"job_%d\n" % (n % JOBS)
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    server = WSGIServer(("127.0.0.1", args.port), handle, log=None)
    server.start()
    announce(server.server_port, args)
    server.serve_forever()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=["aiohttp", "gevent"], required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--stats-file", default="waiting-server-stats.jsonl")
    args = parser.parse_args()
    (run_aiohttp if args.kind == "aiohttp" else run_gevent)(args)


if __name__ == "__main__":
    main()
