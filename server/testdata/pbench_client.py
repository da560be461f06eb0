#!/usr/bin/python3
"""Calls a Pbench server the way Pbench's Python client (lib/pbench/client)
does, reduced to what the gateway test needs: connect() reads
/api/v1/endpoints with a requests.Session, every later URL is built from the
document's "uri" templates with str.format, and a token travels as
"authorization: Bearer". Written for the test from the client's behaviour;
no code of Pbench's is used.

Usage: pbench_client.py SERVER_URL, with PBENCH_TEST_TOKEN (a token with the
ADMIN role), PBENCH_TEST_PLAIN_TOKEN (one without) and PBENCH_TEST_ISSUER in
the environment. Exits 1 with a message at the first unexpected answer.
"""
import os
import sys
from urllib import parse

import requests


class Client:
    def __init__(self, url):
        self.url = url
        self.session = None
        self.endpoints = None
        self.token = None

    def connect(self):
        self.session = requests.Session()
        response = self.session.get(parse.urljoin(self.url, "api/v1/endpoints"))
        response.raise_for_status()
        self.endpoints = response.json()

    def uri(self, api, params=None):
        description = self.endpoints["uri"][api]
        params = params or {}
        if len(description["params"]) != len(params):
            raise ValueError(f"{api} takes {len(description['params'])} parameters")
        return description["template"].format(**params)

    def get(self, api=None, params=None, headers=None, uri=None):
        h = {}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        return self.session.get(uri or self.uri(api, params), headers=h)


def expect(what, response, status):
    if response.status_code != status:
        sys.exit(f"{what}: {response.status_code} {response.text!r}, want {status}")
    return response


def main():
    server = sys.argv[1]
    client = Client(server)
    client.connect()

    openid = client.endpoints["openid"]
    if openid["client"] != "pbench-client" or openid["issuer"] != os.environ["PBENCH_TEST_ISSUER"]:
        sys.exit(f"openid section is not serve's: {openid}")
    for name, description in client.endpoints["uri"].items():
        if not description["template"].startswith(server + "/api/v1/"):
            sys.exit(f"uri {name} does not point at the gateway: {description['template']}")

    # Anonymous: public data reads, private data is the upstream's 401, and a
    # spoofed identity header changes nothing.
    spoof = {"X-Forwarded-User": "mallory", "X-Forwarded-Roles": "ADMIN"}
    r = expect("anonymous public dataset", client.get("datasets", {"dataset": "public-ds"}, spoof), 200)
    if r.json().get("access") != "public":
        sys.exit(f"anonymous public dataset: {r.text!r}")
    expect("anonymous private dataset", client.get("datasets", {"dataset": "private-ds"}, spoof), 401)

    # A bad token is refused by serve, never downgraded to anonymous.
    client.token = "not-a-token"
    r = expect("bad token", client.get("datasets", {"dataset": "public-ds"}), 401)
    if "invalid_token" not in r.headers.get("WWW-Authenticate", ""):
        sys.exit(f"bad token: WWW-Authenticate {r.headers.get('WWW-Authenticate')!r}")

    # Logged in: the owner's private dataset, serve's own user endpoint.
    client.token = os.environ["PBENCH_TEST_TOKEN"]
    expect("owner's private dataset", client.get("datasets_metadata", {"dataset": "private-ds"}, spoof), 200)
    r = expect("user", client.get("user"), 200)
    if r.json().get("username") != "alice":
        sys.exit(f"user: {r.text!r}")
    expect("admin area with ADMIN", client.get(uri=server + "/api/v1/admin/settings"), 200)

    # Without the role, no spelling of the admin prefix gets through.
    client.token = os.environ["PBENCH_TEST_PLAIN_TOKEN"]
    for path, status in [("/api/v1/admin/settings", 403), ("/api/v1/ADMIN/settings", 403),
                         ("/api/v1/Admin./settings", 403), ("/api/v1/admin%20/settings", 403),
                         ("/api/v1/admin;x=1/settings", 400), ("/api/v1/%2561dmin/settings", 400)]:
        expect("without ADMIN " + path, client.get(uri=server + path), status)

    print("pbench client flow: ok")


if __name__ == "__main__":
    main()
