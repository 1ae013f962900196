#!/usr/bin/env python3
"""A stand-in for an OpenAI-compatible chat-completions endpoint (POST /v1/chat/completions),
for the analyst's rephrasing tests. It answers as the documented contract does
(https://platform.openai.com/docs/api-reference/chat/create: `choices[0].message.content`,
`usage`, error documents with 4xx/5xx), checks each request's shape, and plays the failures a
real endpoint has, turn by turn:

  0: a faithful rephrasing (the note's own words, plus "right now")
  1: a model that makes a number up ("... 9999 ...")
  2: a model that makes a name up ("Jordan ...")
  3: too slow (answers after 8 s: past the server's timeout)
  4: a 500 error document

Usage: openai_standin.py DIR. Writes DIR/port once listening, and DIR/log.jsonl: a line per
request (turn, model, max_tokens, authorization, the note text it was given).
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
LOCK = threading.Lock()
TURN = [0]


def log(entry):
    with LOCK, open(os.path.join(DIR, "log.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != "/v1/chat/completions":
            return self.reply(404, {"error": {"message": "unknown path", "type": "invalid_request_error"}})
        try:
            req = json.loads(body)
            messages = req["messages"]
            assert messages[0]["role"] == "system" and messages[-1]["role"] == "user"
            user = messages[-1]["content"]
            note = user.split("Note: ", 1)[1].strip()
        except Exception as e:  # a request the contract does not allow
            return self.reply(400, {"error": {"message": f"bad request: {e}", "type": "invalid_request_error"}})
        with LOCK:
            turn = TURN[0] % 5
            TURN[0] += 1
        log({"turn": turn, "model": req.get("model"), "max_tokens": req.get("max_tokens"),
             "authorization": self.headers.get("Authorization"), "note": note, "user": user})
        if turn == 4:
            return self.reply(500, {"error": {"message": "The server had an error", "type": "server_error"}})
        if turn == 3:
            time.sleep(8)
        content = {
            0: f"{note} right now",
            1: f"{note}, and 9999 in the season",
            2: f"Jordan would approve: {note}",
            3: note,
        }[turn]
        self.reply(200, {
            "id": f"chatcmpl-{turn}", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(content.split()),
                      "total_tokens": len(user.split()) + len(content.split())},
        })


# The server opens up to 8 connections at once: a listen backlog of socketserver's default 5
# would drop a SYN, and the retry comes after the server's timeout.
ThreadingHTTPServer.request_queue_size = 64
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(os.path.join(DIR, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(DIR, "port.tmp"), os.path.join(DIR, "port"))
server.serve_forever()
