#!/usr/bin/env python3
"""A stand-in for an app backend's push webhook (PROTOCOL.md 3.4), for tests/tests/push.rs.

It checks each request as a real receiver must, with Python's own hmac (an implementation
independent of the server's): the signature `v1=` + hex HMAC-SHA256(secret, "{ts}.{body}"), a
timestamp within 5 minutes, JSON with the documented fields; and it plays the failures a real
backend has. Usage:

    webhook_receiver.py PORT_FILE LOG_FILE SECRET PLAN

PLAN is a comma-separated list of answers for successive requests to /push (`503`, `429:1` for
429 with `Retry-After: 1`, `slow:3` to answer after 3 s); after it runs out, every request gets
200. Requests to /gone always get 410. Every request is logged to LOG_FILE as one JSON line:
{"path", "status", "valid", "key", "body"}.
"""
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_FILE, LOG_FILE, SECRET, PLAN = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4]
plan = [p for p in PLAN.split(",") if p]
lock = threading.Lock()
FIELDS = {"id", "device", "game", "rule", "seq", "ts", "text", "facts", "locale", "collapse_key"}


def valid(headers, body: bytes) -> bool:
    ts = headers.get("X-OpenSports-Timestamp", "")
    sig = headers.get("X-OpenSports-Signature", "")
    want = "v1=" + hmac.new(SECRET, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    try:
        fresh = abs(time.time() - int(ts)) < 300
        doc = json.loads(body)
    except ValueError:
        return False
    return (
        hmac.compare_digest(want, sig)
        and fresh
        and FIELDS <= set(doc)
        and headers.get("Idempotency-Key") == doc["id"]
        and headers.get("Content-Type") == "application/json"
    )


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        ok = valid(self.headers, body)
        status, extra = 200, {}
        if not ok:
            status = 401
        elif self.path == "/gone":
            status = 410
        else:
            with lock:
                step = plan.pop(0) if plan else None
            if step and step.startswith("slow:"):
                time.sleep(float(step[5:]))
            elif step and step.startswith("429:"):
                status, extra = 429, {"Retry-After": step[4:]}
            elif step:
                status = int(step)
        line = {"path": self.path, "status": status, "valid": ok, "key": self.headers.get("Idempotency-Key"),
                "body": json.loads(body) if ok else None}
        with lock, open(LOG_FILE, "a") as f:
            f.write(json.dumps(line) + "\n")
        self.send_response(status)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
