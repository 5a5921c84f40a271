"""An OTLP/HTTP receiver and a one-tool MCP upstream in one process, for
tests/interop/otlp/run.

The receiver parses each export with PyPI's opentelemetry-proto classes
(google.protobuf.json_format, after turning OTLP/JSON's hex ids into the
base64 proto3 JSON wants): an unknown field name or a wrongly typed value
fails the parse. The upstream answers every POST with a tools/call result
and records the traceparent it got. Prints "PORTS <receiver> <upstream>",
then once the export with the span arrives, checks it and exits 0 (1 on a
failed check).
"""

import base64
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
seen_upstream = []
done = threading.Event()
result = {"ok": False, "why": "no export"}


def hex_ids_to_base64(node):
    """OTLP/JSON writes ids as hex; proto3 JSON reads bytes as base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            else:
                hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            hex_ids_to_base64(item)


def attrs(span):
    out = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which)
    return out


def check(request):
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    server = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    client = [s for s in spans if s.kind == s.SPAN_KIND_CLIENT]
    assert len(server) == 1 and len(client) == 1, f"spans: {spans}"
    server, client = server[0], client[0]
    service = {kv.key: kv.value.string_value for kv in request.resource_spans[0].resource.attributes}
    assert service.get("service.name") == "sluice-interop", service
    assert server.name == "tools/call get_weather", server.name
    assert server.trace_id.hex() == CLIENT_TRACE, server.trace_id.hex()
    assert server.parent_span_id.hex() == CLIENT_SPAN, server.parent_span_id.hex()
    a = attrs(server)
    assert a["mcp.method.name"] == "tools/call", a
    assert a["gen_ai.tool.name"] == "get_weather", a
    assert a["jsonrpc.request.id"] == "7", a
    assert a["http.response.status_code"] == 200, a
    assert "error.type" not in a, a
    assert client.parent_span_id == server.span_id, "the attempt is the exchange's child"
    assert server.end_time_unix_nano >= server.start_time_unix_nano > 0
    assert seen_upstream, "the upstream got no request"
    parts = seen_upstream[-1].split("-")
    assert parts[1] == CLIENT_TRACE and parts[2] == client.span_id.hex(), seen_upstream


class Receiver(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
        try:
            assert self.path == "/v1/traces", self.path
            assert self.headers.get("Content-Type") == "application/json"
            doc = json.loads(body)
            hex_ids_to_base64(doc)
            request = json_format.Parse(json.dumps(doc), ExportTraceServiceRequest())
            check(request)
            result.update(ok=True, why="")
        except Exception as e:  # noqa: BLE001 - reported, then the run fails
            result.update(ok=False, why=f"{type(e).__name__}: {e}")
        done.set()


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen_upstream.append(self.headers.get("traceparent", ""))
        body = b'{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"sunny"}]}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    for server in (receiver, upstream):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORTS {receiver.server_address[1]} {upstream.server_address[1]}", flush=True)
    if not done.wait(timeout=120):
        print("no export within 120 s", file=sys.stderr)
        sys.exit(1)
    if not result["ok"]:
        print(f"export check failed: {result['why']}", file=sys.stderr)
        sys.exit(1)
    print("otlp: ok (opentelemetry-proto parsed the export; span, attributes and parents as expected)")


if __name__ == "__main__":
    main()
