"""An OTLP/HTTP trace receiver for the tests: the contract an OpenTelemetry collector's
`otlp` receiver serves on port 4318, decoded with the OpenTelemetry project's own protobuf
definitions (PyPI `opentelemetry-proto`), never with our encoder's code.

POST /v1/traces with `Content-Type: application/x-protobuf` (binary) or `application/json`
(the OTLP JSON mapping, parsed strictly by protobuf's json_format: an unknown or misspelt
field fails). Each span received is printed to stdout as one JSON line; a body that does not
decode is answered 400 and printed as {"error": ...}. `--fail-first N` answers the first N
requests 503 with `Retry-After: 0`, as a collector under pressure does (the exporter must try
again). Prints `LISTENING <port>` once it is up.
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)


def attrs(kvs):
    out = {}
    for kv in kvs:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


class Handler(BaseHTTPRequestHandler):
    failures_left = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path != "/v1/traces":
            return self.reply(404, b"", "text/plain")
        if Handler.failures_left > 0:
            Handler.failures_left -= 1
            print(json.dumps({"refused": 503}), flush=True)
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ctype = self.headers.get("Content-Type", "")
        req = ExportTraceServiceRequest()
        try:
            if ctype == "application/x-protobuf":
                req.ParseFromString(body)
            elif ctype == "application/json":
                json_format.Parse(body, req)
            else:
                raise ValueError(f"content type {ctype!r}")
        except Exception as e:  # noqa: BLE001 - any decode failure is the test's finding
            print(json.dumps({"error": str(e), "content_type": ctype}), flush=True)
            return self.reply(400, str(e).encode(), "text/plain")
        for rs in req.resource_spans:
            resource = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    line = {
                        "content_type": ctype,
                        "service": resource.get("service.name"),
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": attrs(s.attributes),
                        "status": s.status.code,
                        "message": s.status.message,
                    }
                    print(json.dumps(line), flush=True)
        resp = ExportTraceServiceResponse()
        if ctype == "application/json":
            self.reply(200, json_format.MessageToJson(resp).encode(), ctype)
        else:
            self.reply(200, resp.SerializeToString(), ctype)

    def reply(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fail-first", type=int, default=0)
    args = ap.parse_args()
    Handler.failures_left = args.fail_first
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
