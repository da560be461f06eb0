#!/usr/bin/python3
"""Validate the dev broker's tokens as Pbench's server does, and log in as
Pbench's functional tests do.

Run against a running `pbench-auth serve --dev` (its base URL as the only
argument) by pkg/cmd/serve's TestPbenchPython. It uses Debian's python3-jwt
(PyJWT) and python3-requests, like Pbench's server and client:

- the OIDC address, realm and client come from GET /api/v1/endpoints;
- the realm's public key from GET {server}/realms/{realm} ("public_key",
  base64 DER, wrapped into PEM as Pbench's OpenIDClient does);
- the password grant ("direct access grant") as Pbench's OIDC admin client
  sends it;
- jwt.decode with RS256, audience "pbench-server", signature, aud and exp
  verified, as Pbench's OpenIDClient.token_introspect; roles from
  resource_access["pbench-server"].roles, as Pbench's auth.verify_auth_oidc.

It prints what it checked and exits 1 on the first failure.
"""

import sys

import jwt
import requests

AUDIENCE = "pbench-server"  # Pbench's default "openid.audience"
TIMEOUT = 30


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def pem_from_realm(oidc_server, realm):
    r = requests.get(f"{oidc_server}/realms/{realm}", timeout=TIMEOUT)
    if r.status_code != 200:
        fail(f"GET /realms/{realm}: {r.status_code}")
    public_key = r.json()["public_key"]
    pem = "-----BEGIN PUBLIC KEY-----\n"
    while public_key:
        pem += public_key[:64] + "\n"
        public_key = public_key[64:]
    return pem + "-----END PUBLIC KEY-----\n"


def user_login(oidc_server, realm, client_id, username, password):
    return requests.post(
        f"{oidc_server}/realms/{realm}/protocol/openid-connect/token",
        data={
            "client_id": client_id,
            "grant_type": "password",
            "scope": "openid profile email",
            "username": username,
            "password": password,
        },
        timeout=TIMEOUT,
    )


def token_introspect(token, pem):
    return jwt.decode(
        token,
        pem,
        algorithms=["RS256"],
        audience=[AUDIENCE],
        options={"verify_signature": True, "verify_aud": True, "verify_exp": True},
    )


def roles_of(payload):
    return payload.get("resource_access", {}).get(AUDIENCE, {}).get("roles", [])


def main(server):
    r = requests.get(f"{server}/api/v1/endpoints", timeout=TIMEOUT)
    if r.status_code != 200:
        fail(f"GET /api/v1/endpoints: {r.status_code}")
    openid = r.json()["openid"]
    oidc_server, realm, client_id = openid["server"], openid["realm"], openid["client"]
    pem = pem_from_realm(oidc_server, realm)
    print(f"realm {realm}: public key read")

    for username, password, admin in (("admin", "admin", True), ("user", "user", False)):
        r = user_login(oidc_server, realm, client_id, username, password)
        if r.status_code != 200:
            fail(f"password grant for {username}: {r.status_code} {r.text}")
        tokens = r.json()
        for field in ("access_token", "refresh_token", "id_token", "session_state"):
            if not tokens.get(field):
                fail(f"password grant for {username}: no {field}")
        if tokens.get("token_type") != "Bearer" or tokens.get("refresh_expires_in", 0) <= 0:
            fail(f"password grant for {username}: token_type/refresh_expires_in {tokens}")
        try:
            payload = token_introspect(tokens["access_token"], pem)
        except jwt.InvalidTokenError as e:
            fail(f"Pbench's token check refused {username}'s token: {e!r}")
        if payload.get("preferred_username") != username or not payload.get("sub"):
            fail(f"{username}'s token names {payload.get('preferred_username')!r}, sub {payload.get('sub')!r}")
        if ("ADMIN" in roles_of(payload)) != admin:
            fail(f"{username}: roles under resource_access[{AUDIENCE!r}] = {roles_of(payload)}")
        # The refresh token is a JWT as Keycloak's (not for the server to
        # check: it is signed with the realm's HMAC key).
        refresh = jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
        if refresh.get("typ") != "Refresh" or refresh.get("sid") != tokens["session_state"]:
            fail(f"{username}'s refresh token: typ {refresh.get('typ')!r}, sid {refresh.get('sid')!r}")
        # The token works on the server that issued the endpoints.
        r = requests.get(
            f"{server}/api/v1/user",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            timeout=TIMEOUT,
        )
        if r.status_code != 200:
            fail(f"GET /api/v1/user with {username}'s token: {r.status_code}")
        print(f"{username}: password grant, PyJWT RS256 aud={AUDIENCE}, roles {roles_of(payload)}: ok")

    # A token for another audience is refused, as Pbench's server would.
    try:
        jwt.decode(
            tokens["access_token"], pem, algorithms=["RS256"], audience=["another-server"],
            options={"verify_signature": True, "verify_aud": True, "verify_exp": True},
        )
        fail("a token was accepted for an audience it does not carry")
    except jwt.InvalidAudienceError:
        pass
    r = user_login(oidc_server, realm, client_id, "admin", "wrong")
    if r.status_code != 401 or r.json().get("error") != "invalid_grant":
        fail(f"wrong password: {r.status_code} {r.text}")
    print("wrong password: 401 invalid_grant: ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        fail("usage: check_tokens.py SERVER_BASE_URL")
    main(sys.argv[1].rstrip("/"))
