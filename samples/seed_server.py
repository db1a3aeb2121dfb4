"""The seed demo: an HTTP server whose POST handler calls method3 -> method2 -> method1, each
sleeping 20 ms, then sleeps 500 ms. A request therefore lasts about 560 ms, of which method3 is
60 ms, method2 40 ms and method1 20 ms.

    python3 samples/seed_server.py --port 8080            # serve until Ctrl-C
    python3 samples/seed_server.py --port 0 --requests 3  # any free port; exit after 3 POSTs
    python3 samples/seed_client.py --port 8080 --count 3  # drive it

Options: --threaded (one thread per request), --keep-alive (HTTP/1.1: several requests per
connection, so do_POST runs back to back on one thread), --port-file F (write the chosen port),
--timings-file F (after each request, append a JSON line: the handler's OS thread id and its
whole time, reply included, which the reply itself cannot carry).
"""
import argparse
import http.server
import json
import os
import sys
import threading
import time


# Each method's own wall time in the current request, as the program itself measures it (the
# tests compare the profile with it: on a busy machine a 20 ms sleep can take longer). Per
# thread: a threaded server runs several requests at once.
timings = threading.local()
timings_fd = None  # --timings-file, opened for appending


def method1():
    started = time.monotonic()
    time.sleep(0.020)
    timings.method1 = (time.monotonic() - started) * 1000


def method2():
    started = time.monotonic()
    method1()
    time.sleep(0.020)
    timings.method2 = (time.monotonic() - started) * 1000


def method3():
    started = time.monotonic()
    method2()
    time.sleep(0.020)
    timings.method3 = (time.monotonic() - started) * 1000


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        started = time.monotonic()
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        method3()
        slept = time.monotonic()
        time.sleep(0.5)
        timings.sleep = (time.monotonic() - slept) * 1000
        elapsed_ms = (time.monotonic() - started) * 1000
        reply = b"ok %d bytes in %.1f ms (method3 %.1f ms, method2 %.1f ms, method1 %.1f ms, sleep %.1f ms)\n" % (
            len(body), elapsed_ms, timings.method3, timings.method2, timings.method1, timings.sleep)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        # The whole call, reply included: writing it can take long too (CI: 130 ms off-CPU in
        # send_response's formatdate, after the clock in the reply had stopped).
        if timings_fd is not None:
            # One write to a file opened for appending: no lock to wait for after the clock stops
            # (four threads finishing at once waited 80 ms for one).
            record = {"thread": threading.get_native_id(), "method3": timings.method3, "method2": timings.method2,
                      "method1": timings.method1, "sleep": timings.sleep}
            record["handler_ms"] = (time.monotonic() - started) * 1000
            os.write(timings_fd, (json.dumps(record) + "\n").encode())
        self.server.handled += 1

    def do_GET(self):
        reply = b"seed demo: POST to profile method3 -> method2 -> method1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--requests", type=int, default=0, help="exit after this many POSTs (0: never)")
    parser.add_argument("--threaded", action="store_true")
    parser.add_argument("--keep-alive", action="store_true")
    parser.add_argument("--port-file")
    parser.add_argument("--timings-file")
    args = parser.parse_args()
    global timings_fd
    if args.timings_file:
        timings_fd = os.open(args.timings_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if args.keep_alive:
        Handler.protocol_version = "HTTP/1.1"
    server_class = http.server.ThreadingHTTPServer if args.threaded else http.server.HTTPServer
    server = server_class(("127.0.0.1", args.port), Handler)
    server.handled = 0
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print("seed server on port %d" % port, file=sys.stderr, flush=True)
    server.timeout = 0.2
    try:
        while not args.requests or server.handled < args.requests:
            server.handle_request()
    except KeyboardInterrupt:
        pass
    # Let threads of a threading server finish their requests.
    if args.threaded:
        server.server_close()


if __name__ == "__main__":
    main()
