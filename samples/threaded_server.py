"""A threaded HTTP server whose handler waits on I/O first and computes later, as request handlers
do: GET / sleeps (a database call) then spins, and times itself. One thread per connection:
the standard library's ThreadingHTTPServer, or Flask's development server with --flask.

    python3 samples/threaded_server.py --port 8080
    ab -n 200 -c 4 http://127.0.0.1:8080/
    curl -X POST http://127.0.0.1:8080/stats     # write the handlers' own timings, then exit

Options: --port-file F (write the chosen port), --stats-file F (where POST /stats writes one JSON
line per request: the handler thread's native id, its name, start, end and duration in ms).
"""
import argparse
import http.server
import json
import os
import threading
import time

WAIT_S = 0.020   # the "database call"
SPIN_S = 0.010   # then the work

records = []     # (native thread id, thread name, start, end), appended without I/O
records_lock = threading.Lock()


def spin(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def serve_request():
    time.sleep(WAIT_S)
    spin(SPIN_S)
    return b"done\n"


def write_stats(path):
    with records_lock:
        rows = list(records)
    with open(path, "w") as f:
        for tid, name, start, end in rows:
            f.write(json.dumps({"tid": tid, "name": name, "start": start, "end": end,
                                "ms": (end - start) * 1000}) + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        started = time.monotonic()
        body = serve_request()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        records.append((threading.get_native_id(), threading.current_thread().name, started, time.monotonic()))

    def do_POST(self):
        write_stats(self.server.stats_file)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
        threading.Thread(target=self.server.shutdown, daemon=True).start()

    def log_message(self, fmt, *args):
        pass


def run_stdlib(args):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.stats_file = args.stats_file
    announce(server.server_address[1], args)
    server.serve_forever()


def run_flask(args):
    import logging
    import flask
    from werkzeug.serving import make_server

    app = flask.Flask(__name__)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @app.route("/")
    def handle():
        started = time.monotonic()
        body = serve_request()
        records.append((threading.get_native_id(), threading.current_thread().name, started, time.monotonic()))
        return body

    @app.route("/stats", methods=["POST"])
    def stats():
        write_stats(args.stats_file)
        # Shut down once the reply is sent: started before, the server's exit could kill this
        # handler's (daemon) thread with the reply unsent.
        reply = flask.Response("")
        reply.call_on_close(lambda: threading.Thread(target=server.shutdown, daemon=True).start())
        return reply

    server = make_server("127.0.0.1", args.port, app, threaded=True)
    announce(server.server_port, args)
    server.serve_forever()


def announce(port, args):
    print("threaded server on port %d (pid %d)" % (port, os.getpid()), flush=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--stats-file", default="threaded-server-stats.jsonl")
    parser.add_argument("--flask", action="store_true")
    args = parser.parse_args()
    (run_flask if args.flask else run_stdlib)(args)


if __name__ == "__main__":
    main()
