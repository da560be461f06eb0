"""A Pbench-like API server: the anchor of bench/run.sh (issue 7).

It validates a Bearer token the way the Pbench server does
(pbench.server.auth.OpenIDClient.token_introspect): PyJWT's jwt.decode with
the realm's PEM public key passed on every call, RS256 only, audience =
the client id, signature, audience and expiry verified. There is no cache;
Pbench has none either. The user database lookup Pbench does afterwards is
left out, which only flatters the anchor.

Environment:
  ANCHOR_REALM_URL  the Keycloak-shaped realm URL, e.g.
                    http://127.0.0.1:8080/realms/pbench-server; its JSON
                    "public_key" (base64 DER) is read once at start-up,
                    as Pbench does
  ANCHOR_CLIENT_ID  the audience to require (default pbench-client)

Run it with Debian's gunicorn and python3-flask/python3-jwt:
  gunicorn --workers 2 --bind 127.0.0.1:PORT --chdir bench/anchor app:app
"""

import json
import os
import urllib.request

import jwt
from flask import Flask, jsonify, request

REALM_URL = os.environ["ANCHOR_REALM_URL"]
CLIENT_ID = os.environ.get("ANCHOR_CLIENT_ID", "pbench-client")
TOKEN_ALG = "RS256"


def _realm_public_key(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:  # nosec: loopback bench only
        info = json.load(resp)
    return (
        "-----BEGIN PUBLIC KEY-----\n"
        + info["public_key"]
        + "\n-----END PUBLIC KEY-----\n"
    )


PEM_PUBLIC_KEY = _realm_public_key(REALM_URL)

app = Flask(__name__)


def token_introspect(token: str) -> dict:
    """Pbench's check: the PEM string is given to PyJWT on every call."""
    return jwt.decode(
        token,
        PEM_PUBLIC_KEY,
        algorithms=[TOKEN_ALG],
        audience=CLIENT_ID,
        options={
            "verify_signature": True,
            "verify_aud": True,
            "verify_exp": True,
        },
    )


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.get("/api/v1/user")
def user():
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return jsonify(message="no Bearer token"), 401
    try:
        claims = token_introspect(token)
    except jwt.InvalidTokenError as e:
        return jsonify(message=f"invalid token: {type(e).__name__}"), 401
    roles = claims.get("realm_access", {}).get("roles", [])
    return jsonify(
        sub=claims.get("sub"),
        username=claims.get("preferred_username", claims.get("sub")),
        email=claims.get("email"),
        roles=roles,
    )
