#!/usr/bin/env python3
"""Writes the issuer's RS256 signing key as a PEM public key (SubjectPublicKeyInfo), for
HAProxy's `jwt_verify`, which reads PEM only: discovery -> jwks_uri -> the first RSA key.

usage: jwks_to_pem.py ISSUER_URL OUT_FILE

DER is encoded here (a few lines of ASN.1) so the benchmark needs no Python package.
"""
import base64
import json
import sys
import urllib.request

RSA_ENCRYPTION = bytes.fromhex("06092a864886f70d010101")  # OID 1.2.840.113549.1.1.1


def der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def integer(b64url: str) -> bytes:
    raw = base64.urlsafe_b64decode(b64url + "=" * (-len(b64url) % 4)).lstrip(b"\0")
    if raw[0] & 0x80:
        raw = b"\0" + raw
    return der(0x02, raw)


def main() -> None:
    issuer, out = sys.argv[1], sys.argv[2]
    with urllib.request.urlopen(issuer.rstrip("/") + "/.well-known/openid-configuration") as r:
        jwks_uri = json.load(r)["jwks_uri"]
    with urllib.request.urlopen(jwks_uri) as r:
        key = next(k for k in json.load(r)["keys"] if k["kty"] == "RSA")
    rsa_key = der(0x30, integer(key["n"]) + integer(key["e"]))
    algorithm = der(0x30, RSA_ENCRYPTION + bytes([0x05, 0x00]))
    spki = der(0x30, algorithm + der(0x03, b"\0" + rsa_key))
    body = base64.encodebytes(spki).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    with open(out, "w") as f:
        f.write("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n")


if __name__ == "__main__":
    main()
