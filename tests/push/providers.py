#!/usr/bin/env python3
"""Stand-ins for the push providers (PROTOCOL.md 3.4), for tests/tests/push.rs. Each speaks its
provider's documented HTTP contract and checks every request with Python's own cryptography
(implementations independent of the server's):

- FCM HTTP v1: `POST /token` is the OAuth 2.0 token endpoint (a JWT-bearer assertion, RS256,
  verified with the service account's public key: iss, aud, scope, exp); `POST
  /v1/projects/{project}/messages:send` wants a Bearer token it issued and a v1 message.
- APNs: `POST /3/device/{token}` over HTTP/2 only, with an ES256 provider token (kid, iss),
  `apns-topic`, `apns-push-type`, `apns-collapse-id`; answers as APNs does (`{"reason": ...}`).
- Web Push: `POST /wp/{id}`, RFC 8030; the body is decrypted with `http_ece` (RFC 8291
  aes128gcm) using the subscription's private key, and the VAPID header (RFC 8292) verified:
  the ES256 token with the `k` key, `aud` this origin, `exp` ahead, `k` the server's key.

It serves HTTPS (HTTP/1.1 and h2 by ALPN) with a certificate from a CA it makes. Usage:

    providers.py DIR PLAN

writes into DIR: ca.pem, service_account.json, apns.p8, vapid.pem (the server's VAPID key),
subscriptions.json (three browser subscriptions), then `port` once it listens. PLAN is a
comma-separated list of answers for successive pushes (any provider): `503`, `429:1` (429 with
`Retry-After: 1`), `slow:3`; after it runs out every push is taken. A device token starting
`dead` (FCM, APNs) or a Web Push id starting `dead` is gone (404 UNREGISTERED / 410
Unregistered / 410). Every push request is logged to DIR/log.jsonl as one JSON line:
{"provider", "status", "valid", "why", "device", "key", "title", "text", "collapse"}.
"""
import asyncio
import base64
import datetime
import json
import os
import socket
import sys
import time

import http_ece
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from hypercorn.asyncio import serve
from hypercorn.config import Config

DIR, PLAN = sys.argv[1], sys.argv[2]
plan = [p for p in PLAN.split(",") if p]
PROJECT, APNS_TOPIC, APNS_KEY_ID, APNS_TEAM = "opensports-test", "com.example.scores", "KEY1234567", "TEAM123456"
issued = set()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def pem_private(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write(name, data):
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def certificates():
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push stand-in CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write("ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    write("leaf.pem", leaf.public_bytes(serialization.Encoding.PEM))
    write("leaf.key", pem_private(key))


def jwt_verify(token, verify):
    """The header and claims of a compact JWS whose signature `verify(sig, input)` accepts."""
    h, c, s = token.split(".")
    verify(b64d(s), f"{h}.{c}".encode())
    return json.loads(b64d(h)), json.loads(b64d(c))


def es256(public):
    def verify(sig, data):
        if len(sig) != 64:
            raise ValueError("ES256 signature is not r||s")
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        public.verify(der, data, ec.ECDSA(hashes.SHA256()))
    return verify


def rs256(public):
    return lambda sig, data: public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())


def log(line):
    with open(os.path.join(DIR, "log.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


async def planned():
    """The status the plan says for this push (None: take it), after any planned delay."""
    if not plan:
        return None, {}
    step = plan.pop(0)
    if step.startswith("slow:"):
        await asyncio.sleep(float(step[5:]))
        return None, {}
    if step.startswith("429:"):
        return 429, {"retry-after": step[4:]}
    return int(step), {}


async def body_of(receive):
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


async def answer(send, status, doc=None, headers=None):
    payload = b"" if doc is None else json.dumps(doc).encode()
    hs = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": payload})


class State:
    port = 0
    sa_public = None
    apns_public = None
    vapid_public = None
    subs = {}


def fcm_token(form):
    fields = dict(p.split("=", 1) for p in form.decode().split("&"))
    assert fields["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer", fields
    header, claims = jwt_verify(fields["assertion"], rs256(State.sa_public))
    assert header["alg"] == "RS256" and header["kid"] == "sa-key-1", header
    assert claims["iss"] == "push@opensports-test.iam.gserviceaccount.com", claims
    assert claims["aud"] == f"https://localhost:{State.port}/token", claims
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging", claims
    assert claims["iat"] <= time.time() + 5 < claims["exp"] + 5, claims
    token = "ya29.stand-in-" + b64e(os.urandom(9))
    issued.add(token)
    return token


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path, headers = scope["path"], {k.decode().lower(): v.decode() for k, v in scope["headers"]}
    body = await body_of(receive)
    if path == "/token":
        try:
            token = fcm_token(body)
        except Exception as e:  # noqa: BLE001 - any failure is a refused assertion
            return await answer(send, 400, {"error": "invalid_grant", "error_description": str(e)})
        return await answer(send, 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})
    line = {"status": 200, "valid": True, "why": ""}
    try:
        if path.startswith("/v1/projects/"):
            line["provider"] = "fcm"
            assert path == f"/v1/projects/{PROJECT}/messages:send", path
            assert headers.get("authorization", "").removeprefix("Bearer ") in issued, "unknown access token"
            m = json.loads(body)["message"]
            line.update(device=m["token"], key=m["data"]["push_id"], title=m["notification"]["title"],
                        text=m["notification"]["body"], collapse=m["android"]["collapse_key"])
            assert m["apns"]["headers"]["apns-collapse-id"] == line["collapse"]
            assert all(isinstance(v, str) for v in m["data"].values()), "FCM data values are strings"
            gone = (404, {"error": {"code": 404, "status": "NOT_FOUND", "message": "Requested entity was not found.",
                    "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                 "errorCode": "UNREGISTERED"}]}})
        elif path.startswith("/3/device/"):
            line["provider"] = "apns"
            assert scope["http_version"] == "2", "APNs is HTTP/2 only"
            header, claims = jwt_verify(headers["authorization"].removeprefix("bearer "), es256(State.apns_public))
            assert header["kid"] == APNS_KEY_ID and claims["iss"] == APNS_TEAM, (header, claims)
            assert abs(claims["iat"] - time.time()) < 3600, claims
            assert headers["apns-topic"] == APNS_TOPIC and headers["apns-push-type"] == "alert", headers
            doc = json.loads(body)
            line.update(device=path.removeprefix("/3/device/"), key=doc["push_id"],
                        title=doc["aps"]["alert"]["title"], text=doc["aps"]["alert"]["body"],
                        collapse=headers["apns-collapse-id"])
            gone = (410, {"reason": "Unregistered", "timestamp": int(time.time() * 1000)})
        elif path.startswith("/wp/"):
            line["provider"] = "webpush"
            sub_id = path.removeprefix("/wp/")
            sub = State.subs[sub_id]
            scheme, _, params = headers["authorization"].partition(" ")
            assert scheme == "vapid", scheme
            p = dict(x.strip().split("=", 1) for x in params.split(","))
            assert b64d(p["k"]) == State.vapid_public, "k is not the server's VAPID key"
            k = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(p["k"]))
            _, claims = jwt_verify(p["t"], es256(k))
            assert claims["aud"] == f"https://localhost:{State.port}" and claims["exp"] > time.time(), claims
            assert claims["exp"] <= time.time() + 24 * 3600 and claims["sub"].startswith("mailto:"), claims
            assert headers["content-encoding"] == "aes128gcm" and int(headers["ttl"]) > 0, headers
            assert len(headers["topic"]) <= 32, headers["topic"]
            doc = json.loads(http_ece.decrypt(body, private_key=sub["private"], auth_secret=sub["auth"],
                                              version="aes128gcm"))
            line.update(device=sub_id, key=doc["id"], title=doc["title"], text=doc["text"],
                        collapse=doc["collapse_key"], topic=headers["topic"])
            gone = (410, None)
        else:
            return await answer(send, 404, {"error": "no such path"})
    except Exception as e:  # noqa: BLE001 - a malformed request is logged and refused
        line.update(valid=False, why=repr(e), status=400)
        log(line)
        return await answer(send, 400, {"reason": "BadRequest", "why": repr(e)})
    if str(line.get("device", "")).startswith("dead"):
        line["status"] = gone[0]
        log(line)
        return await answer(send, *gone)
    status, extra = await planned()
    if status is not None:
        line["status"] = status
        log(line)
        return await answer(send, status, {"reason": "ServiceUnavailable"}, extra)
    log(line)
    if line["provider"] == "fcm":
        return await answer(send, 200, {"name": f"projects/{PROJECT}/messages/{b64e(os.urandom(6))}"})
    if line["provider"] == "apns":
        return await answer(send, 200, None, {"apns-id": "5E5A0E2B-1F9D-4C53-8C4B-1D2B3C4D5E6F"})
    return await answer(send, 201, None, {"location": f"https://localhost:{State.port}/msg/1"})


def main():
    certificates()
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    State.sa_public = sa_key.public_key()
    apns_key = ec.generate_private_key(ec.SECP256R1())
    State.apns_public = apns_key.public_key()
    write("apns.p8", pem_private(apns_key))
    vapid = ec.generate_private_key(ec.SECP256R1())
    State.vapid_public = vapid.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    write("vapid.pem", pem_private(vapid))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    State.port = sock.getsockname()[1]
    write("service_account.json", json.dumps({
        "type": "service_account", "project_id": PROJECT, "private_key_id": "sa-key-1",
        "private_key": pem_private(sa_key).decode(),
        "client_email": "push@opensports-test.iam.gserviceaccount.com", "client_id": "1",
        "token_uri": f"https://localhost:{State.port}/token",
    }))
    subs = {}
    for name in ["browser1", "browser2", "dead1"]:
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        State.subs[name] = {"private": key, "auth": auth}
        point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        subs[name] = {"endpoint": f"https://localhost:{State.port}/wp/{name}",
                      "keys": {"p256dh": b64e(point), "auth": b64e(auth)}, "expirationTime": None}
    write("subscriptions.json", json.dumps(subs))
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.certfile = os.path.join(DIR, "leaf.pem")
    config.keyfile = os.path.join(DIR, "leaf.key")
    config.alpn_protocols = ["h2", "http/1.1"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 60
    write("port", str(State.port))
    asyncio.run(serve(app, config))


if __name__ == "__main__":
    main()
