"""A WSGI application for gunicorn (record --subprocesses of a pre-fork server): each request is
served by `handle`, which waits 20 ms (a backend) and then computes 10 ms. Every request is
appended to the file named by WSGI_APP_LOG: the worker's pid and the handler's own duration.

    WSGI_APP_LOG=/tmp/requests.jsonl gunicorn -w 4 -b 127.0.0.1:8000 --chdir samples wsgi_app:app
"""
import json
import os
import time

LOG = os.environ.get("WSGI_APP_LOG", "/dev/null")


def handle(environ):
    started = time.monotonic()
    time.sleep(0.02)
    end = time.monotonic() + 0.01
    n = 0
    while time.monotonic() < end:
        n += 1
    with open(LOG, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "ms": (time.monotonic() - started) * 1000}) + "\n")
    return b"ok\n" if n >= 0 else b""  # (one length: ab counts a body of another length as failed)


def app(environ, start_response):
    body = handle(environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
