"""QStash signatures under clock skew between QStash and the worker.

QStash stamps `iat` = `nbf` = its own now in whole seconds, `exp` = iat + 300
(https://upstash.com/docs/qstash/howto/signature; ../shared/reference/qstash.md §3.1). The SDK's
`clock_tolerance` never reaches PyJWT (§3.2), which is why the service has its own verifier.
"""

from __future__ import annotations

import time

import jwt
import pytest
from data_pipeline.adapters.qstash_signature import (
    CLOCK_TOLERANCE_SECONDS,
    DeliveryVerifier,
    InvalidSignature,
)
from data_pipeline.devtools.qstash_server.signing import body_claim, sign_delivery
from qstash import Receiver
from qstash.errors import SignatureError

CURRENT, NEXT = "sig_current_key_for_tests_0123456789", "sig_next_key_for_tests_0123456789ab"
URL = "https://pipeline.example/api/queue/process-event"
BODY = b'{"event":"order.created","merchant":1}'


def token(*, key=CURRENT, shift=0, lifetime=300, **overrides):
    now = int(time.time()) + shift
    claims = {
        "iss": "Upstash",
        "sub": URL,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": "jwt_test",
        "body": body_claim(BODY),
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="HS256")


verifier = DeliveryVerifier(CURRENT, NEXT)


def test_a_worker_two_seconds_behind_qstash_accepts_the_delivery():
    ahead = token(shift=2)
    verifier.verify(signature=ahead, body=BODY, url=URL)
    # The SDK refuses the same genuine delivery even when asked for a tolerance: the reason
    # the service does not call Receiver.verify.
    with pytest.raises(SignatureError):
        Receiver(CURRENT, NEXT).verify(
            signature=ahead, body=BODY.decode(), url=URL, clock_tolerance=5
        )


def test_tokens_signed_with_the_next_key_pass_during_rotation():
    verifier.verify(signature=token(key=NEXT, shift=1), body=BODY, url=URL)


@pytest.mark.parametrize(
    ("case", "make_token"),
    [
        ("not valid for minutes yet", lambda: token(shift=180)),
        ("just beyond the tolerance", lambda: token(shift=CLOCK_TOLERANCE_SECONDS + 3)),
        ("expired a minute ago", lambda: token(shift=-360)),
        ("expired beyond the tolerance", lambda: token(shift=-300 - CLOCK_TOLERANCE_SECONDS - 3)),
        ("another signing key", lambda: token(key="sig_someone_else_entirely_0123456789")),
        ("another URL", lambda: token(sub="https://pipeline.example/api/queue/sync-step")),
        ("another body", lambda: token(body=body_claim(b"{}"))),
        ("no body claim", lambda: token(body=None)),
        ("body claim not a string", lambda: token(body=12)),
        ("no nbf", lambda: token(nbf=None)),
        ("another issuer", lambda: token(iss="Someone")),
        ("not a JWT", lambda: "garbage"),
        ("alg none", lambda: jwt.encode({"iss": "Upstash", "sub": URL}, None, algorithm="none")),
    ],
)
def test_refused(case, make_token):
    # Built when the test runs, not at collection: the clock matters here.
    with pytest.raises(InvalidSignature):
        verifier.verify(signature=make_token(), body=BODY, url=URL)


def test_the_local_server_signature_is_accepted_with_or_without_padding():
    signature = sign_delivery(URL, BODY, CURRENT)
    verifier.verify(signature=signature, body=BODY, url=URL)
    unpadded = token(body=body_claim(BODY).rstrip("="))
    verifier.verify(signature=unpadded, body=BODY, url=URL)


def test_no_keys_refuses_everything():
    with pytest.raises(InvalidSignature, match="no signing key"):
        DeliveryVerifier("", "").verify(signature=token(), body=BODY, url=URL)
