"""nara's signed machine requests, made by an independent RFC 9421 library.

pyauth's `http-message-signatures` (PyPI) signs requests with an Ed25519 key
the way any agency system would; nara must accept them, name the subsystem,
and refuse a tampered body, a foreign key and a revoked-or-unknown key id.

    python3 tests/independent/http_signatures.py BASE_URL NARA_BIN AGENCY
(NARA_DATA_DIR or NARA_DATABASE_URL must name the database `nara` serves.)
"""

import base64
import secrets
import json
import subprocess
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from http_message_signatures import HTTPMessageSigner, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

base, nara, agency = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


class Message:
    def __init__(self, method, url, headers):
        self.method, self.url, self.headers = method, url, headers


def send(method, path, key_id, key, body=None, tamper=None):
    url = base + path
    msg = Message(method, url, {"content-type": "application/json"} if body is not None else {})
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: key}),
    )
    covered = ("@method", "@target-uri") if body is None else ("@method", "@target-uri", "content-type")
    # A nonce makes two identical requests in one second two signatures
    # (Ed25519 is deterministic: the same base is the same signature, which
    # nara accepts once).
    signer.sign(msg, key_id=key_id, label="nara", covered_component_ids=covered, body=body,
                nonce=secrets.token_urlsafe(12))
    sent = body if tamper is None else tamper
    req = urllib.request.Request(url, data=sent, method=method, headers=msg.headers)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read()), msg.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), msg.headers


key = Ed25519PrivateKey.generate()
raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
key_id = subprocess.run(
    [nara, "machine-client", "--agency", agency, "--subsystem", "pyhms-test", f"--public-key={pem}"],
    check=True, capture_output=True, text=True,
).stdout.strip()
check(key_id.startswith(f"{agency}/pyhms-test/"), f"registered the key as {key_id}")

status, body, headers = send("GET", "/api/v1/machine/whoami", key_id, key)
print("   Signature-Input:", headers.get("Signature-Input"))
check(status == 200 and body.get("client") == f"{agency}/pyhms-test", f"signed GET accepted: {status} {body}")

payload = json.dumps({"purpose": "test", "n": 1}).encode()
status, body, headers = send("POST", "/api/v1/machine/whoami?x=1", key_id, key, body=payload)
check("Content-Digest" in headers, "the library added Content-Digest")
check(status == 200 and body.get("key_id") == key_id, f"signed POST with a body accepted: {status} {body}")

status, body, _ = send("POST", "/api/v1/machine/whoami", key_id, key, body=payload, tamper=payload.replace(b"1", b"2"))
check(status == 401 and "Content-Digest" in body.get("detail", ""), f"tampered body refused: {status} {body.get('detail')}")

def resend(method, path, headers, body=None, extra=None):
    req = urllib.request.Request(base + path, data=body, method=method, headers={**headers, **(extra or {})})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


status, body = resend("POST", "/api/v1/machine/whoami?x=1", headers, payload)
check(status == 401 and "already used" in body.get("detail", ""), f"the same signed request again is refused as a replay: {status}")
relabelled = {k: v.replace("nara=", "again=", 1) if k.lower() in ("signature", "signature-input") else v for k, v in headers.items()}
status, body = resend("POST", "/api/v1/machine/whoami?x=1", relabelled, payload)
check(status == 401, f"the same signature under another label is refused: {status} {body.get('detail')}")

status, body, headers = send("GET", "/api/v1/machine/whoami", key_id, key)
check(status == 200, f"a fresh signature is accepted: {status}")
_, _, fresh = send("GET", "/api/v1/machine/whoami", key_id, key)
status, body = resend("GET", "/api/v1/machine/whoami", fresh, extra={"Nara-Subject": "900101-2345678"})
check(status == 401 and "nara-subject" in body.get("detail", ""), f"a header that carries meaning, unsigned, is refused: {status} {body.get('detail')}")

other = Ed25519PrivateKey.generate()
status, body, _ = send("GET", "/api/v1/machine/whoami", key_id, other)
check(status == 401 and "does not verify" in body.get("detail", ""), f"another key's signature refused: {status}")

status, body, _ = send("GET", "/api/v1/machine/whoami", f"{agency}/nobody/1", key)
check(status == 401, f"unknown key id refused: {status}")

if failures:
    print(f"{len(failures)} checks failed")
    sys.exit(1)
print("RFC 9421: nara accepts what pyauth/http-message-signatures signs, and refuses what it must")
