"""OTC's AK/SK signing (``SDK-HMAC-SHA256``): known answers from Huawei's own signer tests, and the verifier
refusing what OTC's gateway refuses.

Known answers: Huawei's API Gateway Python SDK (``ApiGateway-python-sdk``, its ``test_signer.py``,
Copyright Huawei 2024-2025) pins the canonical request of ``POST .../app1?a=1`` with header
``x-stage: RELEASE`` and body ``body``, the string to sign of an (indented) canonical request at
``20240326T030801Z``, and ``HMAC-SHA256("abc", "abc")``. The same algorithm is
``huaweicloudsdkcore/signer/signer.py`` of huaweicloud-sdk-python-v3 (trailing slash on the URI, sorted
query, lower-cased trimmed headers).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from bootstrap_agent.otc_signing import (
    KnownKey,
    SigningKey,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_expiry,
    key_from_securitykey,
    sign_request,
    signature,
    string_to_sign,
    verify_request,
)

APIG_HOST = "30030113-3657-4fb6-a7ef-90764239b038.apigw.cn-north-1.huaweicloud.com"
BODY_SHA = "230d8358dc8e8890b4c58deeb62912ee2f20357ae92a5cc861b98e68fe31acb5"  # sha256("body")
NOW = datetime(2026, 11, 29, 14, 0, 0, tzinfo=UTC)
KEY = SigningKey("EXAMPLEAK00000000001", "example-secret-key-0000000000000000000000")
TEMP = SigningKey("TEMPORARYAK000000001", "temporary-secret-00000000000000000000000", "token-" + "x" * 40)
URL = "http://10.231.0.2:8180/autoscaling-api/v1/local/scaling_instance_hook/g1/list?instance_id=abc"


# -- known answers -----------------------------------------------------------------------------------------
def test_canonical_request_matches_the_apig_sdk() -> None:
    assert hashlib.sha256(b"body").hexdigest() == BODY_SHA
    got = canonical_request("POST", "/app1", "a=1", {"x-stage": "RELEASE"}, ["x-stage"], b"body")
    assert got == f"POST\n/app1/\na=1\nx-stage:RELEASE\n\nx-stage\n{BODY_SHA}"


def test_string_to_sign_matches_the_apig_sdk() -> None:
    pad = " " * 12  # the SDK's test keeps its triple-quoted indentation: the hash covers it
    canonical = "\n".join(["POST", pad + "/app1%3Fa%3D1/", pad + "a=1", pad + f"host:{APIG_HOST}",
                           pad + "x-sdk-date:20240326T030801Z", pad + "x-stage:RELEASE", pad,
                           pad + "host;x-sdk-date;x-stage", pad + BODY_SHA])
    assert string_to_sign(canonical, "20240326T030801Z") == (
        "SDK-HMAC-SHA256\n20240326T030801Z\n5847720941657701137ad8098b63585092cea7d982e14b2efd0a668460f2da2a")


def test_signature_is_hex_hmac_sha256() -> None:
    assert signature("abc", "abc") == "2f02e24ae2e1fe880399f27600afa88364e6062bf9bbe114b32fa8f23d03608a"


def test_uri_and_query_rules() -> None:
    assert canonical_uri("/v1/p/scaling_group") == "/v1/p/scaling_group/"
    assert canonical_uri("/v1/p/") == "/v1/p/"
    assert canonical_uri("/a%20b/c d") == "/a%20b/c%20d/"  # decoded, then encoded once
    assert canonical_query("b=2&a=x y&a=1&c=") == "a=1&a=x%20y&b=2&c="
    assert canonical_query("name=a/b~c") == "name=a%2Fb~c"


def test_sign_request_headers() -> None:
    added = sign_request("GET", URL, {}, None, TEMP, NOW)
    assert added["X-Sdk-Date"] == "20261129T140000Z"
    assert added["X-Security-Token"] == TEMP.token
    auth = added["Authorization"]
    assert auth.startswith("SDK-HMAC-SHA256 Access=TEMPORARYAK000000001, "
                           "SignedHeaders=host;x-sdk-date;x-security-token, Signature=")
    # recomputed by hand: host from the URL (with its port), the date, the token, the empty body
    canonical = ("GET\n/autoscaling-api/v1/local/scaling_instance_hook/g1/list/\ninstance_id=abc\n"
                 f"host:10.231.0.2:8180\nx-sdk-date:20261129T140000Z\nx-security-token:{TEMP.token}\n\n"
                 f"host;x-sdk-date;x-security-token\n{hashlib.sha256(b'').hexdigest()}")
    assert auth.endswith("Signature=" + signature(TEMP.secret, string_to_sign(canonical, "20261129T140000Z")))
    assert "X-Security-Token" not in sign_request("GET", URL, {}, None, KEY, NOW)
    # the host a client sends: without a default port
    explicit = sign_request("GET", "https://as.example:443/v1/p/x", {}, None, KEY, NOW)["Authorization"]
    assert explicit == sign_request("GET", "https://as.example/v1/p/x", {}, None, KEY, NOW)["Authorization"]


# -- verifying ---------------------------------------------------------------------------------------------
def _request(key: SigningKey, body: bytes = b"", method: str = "PUT", url: str = URL,
             extra: dict[str, str] | None = None) -> tuple[str, str, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    headers.update(sign_request(method, url, headers, body, key, NOW))
    headers["Host"] = "10.231.0.2:8180"
    headers["User-Agent"] = "python-requests/2"  # added after signing, as requests does: not signed
    target = url.split("8180", 1)[1]
    return method, target, headers, body


def _lookup(*known: KnownKey):  # type: ignore[no-untyped-def]
    table = {k.key.access: k for k in known}
    return table.get


EPOCH = NOW.timestamp()


def test_a_correctly_signed_request_passes() -> None:
    method, target, headers, body = _request(TEMP, b'{"lifecycle_action_result": "CONTINUE"}')
    assert verify_request(method, target, headers, body, _lookup(KnownKey(TEMP, EPOCH + 600)), EPOCH) is None
    method, target, headers, body = _request(KEY)
    assert verify_request(method, target, headers, body, _lookup(KnownKey(KEY)), EPOCH + 899) is None


@pytest.mark.parametrize("tamper, reason", [
    (lambda r: r[2].pop("Authorization"), "no Authorization header"),
    (lambda r: r[2].update(Authorization="Basic abc"), "Authorization is not of the form"),
    (lambda r: r[2].update(Authorization=r[2]["Authorization"].replace("TEMPORARYAK", "OTHERKEYAK0")),
     "unknown access key OTHERKEYAK0000000001"),
    (lambda r: r[2].pop("X-Security-Token"), "is temporary: X-Security-Token missing"),
    (lambda r: r[2].update({"X-Security-Token": "token-" + "y" * 40}), "X-Security-Token does not belong"),
    (lambda r: r[2].update({"X-Sdk-Date": "2026-11-29"}), "X-Sdk-Date missing or not YYYYMMDDTHHMMSSZ"),
    (lambda r: r[2].update({"Content-Type": "text/plain"}), "signature does not match"),
    (lambda r: r[2].update(Host="10.231.0.3:8180"), "signature does not match"),
])
def test_tampered_requests_are_refused(tamper, reason) -> None:  # type: ignore[no-untyped-def]
    request = _request(TEMP, b'{"a": 1}')
    tamper(request)
    refused = verify_request(*request, _lookup(KnownKey(TEMP, EPOCH + 600)), EPOCH)
    assert refused is not None and reason in refused, refused
    assert TEMP.secret not in refused and str(TEMP.token) not in refused


def test_body_path_query_and_method_are_covered() -> None:
    lookup = _lookup(KnownKey(KEY))
    method, target, headers, body = _request(KEY, b'{"desire_instance_number": 1}')
    assert verify_request(method, target, headers, b'{"desire_instance_number": 9}', lookup, EPOCH) == (
        "signature does not match (access key EXAMPLEAK00000000001)")
    assert verify_request("POST", target, headers, body, lookup, EPOCH) is not None
    assert verify_request(method, target.replace("abc", "abd"), headers, body, lookup, EPOCH) is not None
    assert verify_request(method, target.replace("/g1/", "/g2/"), headers, body, lookup, EPOCH) is not None


def test_expired_key_and_clock_skew_are_refused() -> None:
    request = _request(TEMP)
    assert "expired at 2026-11-29T13:59:59Z" in str(verify_request(*request, _lookup(KnownKey(TEMP, EPOCH - 1)),
                                                                   EPOCH))
    skewed = verify_request(*request, _lookup(KnownKey(TEMP, EPOCH + 7200)), EPOCH + 901)
    assert skewed is not None and "901 s from this server's clock (at most 900)" in skewed


def test_unsigned_token_header_is_refused() -> None:
    """A token sent but left out of SignedHeaders could be swapped in transit: refused."""
    method, target, headers, body = _request(KEY)
    headers["X-Security-Token"] = "whatever"
    refused = verify_request(method, target, headers, body, _lookup(KnownKey(KEY)), EPOCH)
    assert refused == "SignedHeaders does not include x-security-token"


def test_securitykey_document() -> None:
    known = key_from_securitykey({"credential": {"access": "AK", "secret": "SK", "securitytoken": "T",
                                                 "expires_at": format_expiry(EPOCH)}})
    assert known == KnownKey(SigningKey("AK", "SK", "T"), EPOCH)
    assert format_expiry(EPOCH) == "2026-11-29T14:00:00.000000Z"
    with pytest.raises(ValueError):
        key_from_securitykey({"credential": {"access": "AK", "secret": "", "securitytoken": "T"}})
    with pytest.raises(ValueError):
        key_from_securitykey({"access": "AK"})
