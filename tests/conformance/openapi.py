"""The OpenAPI conformance test: Schemathesis, a property-based API fuzzer,
generates requests from nara's /openapi.json (valid and invalid ones) and
checks every answer against the document: no server error, only documented
status codes, media types and headers, bodies that match their schemas, 405
for undeclared methods, invalid input refused.

    python openapi.py http://127.0.0.1:8080 nara-data/demo-accounts.json

Every security scheme the document names gets a real credential
(schemathesis.toml): an operator's API token for the catalogue, the
inventory and definitions; a signed-in citizen's session, with the
anti-forgery token its pages carry, for consents, applications and data
access. Operations for other roles answer their documented 401/403. Signed
machine requests (RFC 9421) are checked by tests/independent/http_signatures.py.
Run it on a throwaway demo: the fuzzer writes. Exits non-zero on any failure.
"""

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.parse

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ignored_auth",
    # Not ensure_resource_availability: it infers that a catalogue service
    # made by POST /api/v1/services can be applied for at
    # /api/v1/services/{code}/applications, but only published service
    # definitions can (a catalogue entry is not an online form): 404 is right.
])


def account(accounts, role):
    return next(a for a in accounts if a["role"] == role)


def sign_in(base, person):
    """A citizen's session cookie and the anti-forgery token its pages carry."""
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    form = urllib.parse.urlencode({"username": person["username"], "password": person["password"]})
    conn.request("POST", "/sign-in", form, {"content-type": "application/x-www-form-urlencoded"})
    r = conn.getresponse()
    r.read()
    cookie = next(
        (v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and "nara_session=" in v),
        None,
    )
    if r.status != 303 or cookie is None:
        sys.exit(f"signing in {person['username']} failed: {r.status}")
    conn.request("GET", "/my/consents", headers={"cookie": cookie})
    page = conn.getresponse().read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    if csrf is None:
        sys.exit("no anti-forgery token on /my/consents")
    return cookie, csrf.group(1)


def main():
    base, accounts_file = sys.argv[1].rstrip("/"), sys.argv[2]
    accounts = json.load(open(accounts_file))
    cookie, csrf = sign_in(base, account(accounts, "citizen"))
    env = dict(
        os.environ,
        NARA_OPERATOR_TOKEN=account(accounts, "operator")["api_token"],
        NARA_CITIZEN_SESSION=cookie.split("=", 1)[1],
    )
    here = os.path.dirname(os.path.abspath(__file__))
    # hooks.py: a serializer for JSON-lines bodies.
    env["SCHEMATHESIS_HOOKS"] = "hooks"
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    st = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    command = [
        st, "--config-file", os.path.join(here, "schemathesis.toml"),
        "run", f"{base}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", os.environ.get("NARA_CONFORMANCE_EXAMPLES", "40"),
        "--seed", os.environ.get("NARA_CONFORMANCE_SEED", "20261201"),
        "--workers", "2",
        "-H", f"X-CSRF-Token: {csrf}",
        "--no-color",
    ]
    sys.exit(subprocess.run(command, env=env).returncode)


if __name__ == "__main__":
    main()
