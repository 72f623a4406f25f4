"""verify_request with a session key vs an operator key, and issue+revoke (decision 0029).

Run: ``.venv/bin/python tests/unit/bench_sessions.py`` (medians of 15 runs, microseconds)."""

# ruff: noqa
import timeit, statistics
from datetime import UTC, datetime
from urllib.parse import urlsplit
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from brazier.api.sigv4 import verify_request
from brazier.store.sessions import SessionStore

store = SessionStore()
for _ in range(1000):
    store.issue("111122223333")
s = store.issue("111122223333")
OP = type("K", (), {})()
OP.access_key_id, OP.secret_access_key, OP.account_id = (
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "111122223333",
)


def wire(key, secret, token):
    r = AWSRequest(method="GET", url="http://127.0.0.1:9000/2015-03-31/functions/")
    SigV4Auth(Credentials(key, secret, token), "lambda", "us-east-1").add_auth(r)
    h = dict(r.headers.items())
    h["Host"] = "127.0.0.1:9000"
    return h


hs = wire(s.access_key_id, s.secret_access_key, s.session_token)
ho = wire(OP.access_key_id, OP.secret_access_key, None)
now = datetime.now(UTC)


def v(h):
    return verify_request(
        "GET",
        "/2015-03-31/functions/",
        "",
        h,
        b"",
        lookup_secret={OP.access_key_id: OP}.get,
        now=now,
        mode="sigv4",
        default_region="us-east-1",
        lookup_session=store.get,
    )


assert v(hs).account_id == "111122223333"
v(ho)


def per(f, n=2000):
    runs = [timeit.timeit(f, number=n) / n * 1e6 for _ in range(15)]
    return statistics.median(runs), max(runs)


print("verify operator key us (median,max of 15x2000):", per(lambda: v(ho)))
print("verify session key us:", per(lambda: v(hs)))
print("issue us:", per(lambda: store.revoke(store.issue("1").access_key_id), 500))
