#!/usr/bin/env python3
"""Mints N access tokens from the embedded issuer's /v1/token (client credentials) over one
keep-alive connection and writes them one per line. Each token has a unique jti.

usage: mint_tokens.py ISSUER_URL CLIENT_ID CLIENT_SECRET N OUT_FILE
"""
import base64
import http.client
import json
import sys
import urllib.parse


def main() -> None:
    issuer, client_id, secret, count, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    url = urllib.parse.urlsplit(issuer)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    auth = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "halo.api"})
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/x-www-form-urlencoded"}
    tokens = []
    for _ in range(count):
        conn.request("POST", url.path.rstrip("/") + "/v1/token", body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            sys.exit(f"token endpoint answered {response.status}: {data[:200]!r}")
        tokens.append(json.loads(data)["access_token"])
    if len(set(tokens)) != len(tokens):
        sys.exit("the issuer returned duplicate tokens")
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")


if __name__ == "__main__":
    main()
