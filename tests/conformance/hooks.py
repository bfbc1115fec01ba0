"""Schemathesis hooks for nara's conformance test: how to send a body of
JSON lines (application/x-ndjson, /api/v1/security/intake), which
Schemathesis has no serializer for. The document describes the body as a
string; it is sent as those bytes, so malformed lines are fuzzed too."""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def json_lines(ctx, value):
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, list):
        return "\n".join(json.dumps(v) for v in value).encode()
    return json.dumps(value).encode()
