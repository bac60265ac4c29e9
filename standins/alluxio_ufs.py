"""The Alluxio stand-in's under-store: the root UFS of the rendered properties, written for real over S3.

Where real Alluxio takes it from (v2.9.3 / v1.8.2): the root mount is ``alluxio.master.mount.table.root.ufs``
(2.9) or ``alluxio.underfs.address`` (1.8), here ``s3a://bucket/dir``; the endpoint ``alluxio.underfs.s3.endpoint``
(path-style, as our renderings for OBS and moto use); the keys ``s3a.accessKeyId``/``s3a.secretKey`` (2.9,
``PropertyKey.S3A_ACCESS_KEY``) or ``aws.accessKeyId``/``aws.secretKey`` (1.8), else the AWS SDK's profile file
named by ``AWS_CREDENTIAL_PROFILES_FILE`` (with its session token; the agency case). An Alluxio path ``/a/b``
is the object ``dir/a/b``. Signed with AWS Signature V4 from the standard library (the stand-ins import
nothing else); the region is ``alluxio.underfs.s3.endpoint.region``, else ``us-east-1``.
"""

from __future__ import annotations

import configparser
import datetime
import hashlib
import hmac
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

ROOT_KEYS = {"2.9": "alluxio.master.mount.table.root.ufs", "1.8": "alluxio.underfs.address"}
KEY_NAMES = {"2.9": ("s3a.accessKeyId", "s3a.secretKey"), "1.8": ("aws.accessKeyId", "aws.secretKey")}
_ERROR_CODE_RE = re.compile(rb"<Code>([^<]+)</Code>")


class UfsError(RuntimeError):
    """The under-store refused or could not be reached; the message names S3's error code, never a key."""


@dataclass(frozen=True)
class Ufs:
    endpoint: str
    bucket: str
    prefix: str
    region: str
    access: str
    secret: str
    token: str | None

    def object_key(self, alluxio_path: str) -> str:
        return f"{self.prefix}{alluxio_path.lstrip('/')}"

    def put(self, alluxio_path: str, data: bytes) -> None:
        self._request("PUT", self.object_key(alluxio_path), data)

    def get(self, alluxio_path: str) -> bytes:
        return self._request("GET", self.object_key(alluxio_path), b"")

    def delete(self, alluxio_path: str) -> None:
        self._request("DELETE", self.object_key(alluxio_path), b"")

    def _request(self, method: str, key: str, data: bytes) -> bytes:
        parts = urlsplit(self.endpoint)
        path = "/" + quote(f"{self.bucket}/{key}", safe="/~")
        headers = _sign(method, parts.netloc, path, data, self)
        url = f"{parts.scheme}://{parts.netloc}{path}"
        # An explicit type: urllib's default for a body (form-urlencoded) makes some servers parse it away.
        headers["Content-Type"] = "application/octet-stream"
        request = urllib.request.Request(url, data=data if method == "PUT" else None, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                body: bytes = answer.read()
                return body
        except urllib.error.HTTPError as exc:
            match = _ERROR_CODE_RE.search(exc.read())
            code = match.group(1).decode() if match else f"HTTP {exc.code}"
            raise UfsError(f"{method} s3a://{self.bucket}/{key}: {code}") from None
        except OSError as exc:
            raise UfsError(f"{method} s3a://{self.bucket}/{key}: {getattr(exc, 'reason', exc)}") from None


def ufs_from(version: str, properties: Mapping[str, str]) -> Ufs | None:
    """The root UFS, or ``None`` when it is not an ``s3a://``/``s3://`` address (nothing to write to)."""
    root = properties.get(ROOT_KEYS[version], "").strip()
    match = re.match(r"^s3a?://([^/]+)/?(.*)$", root)
    if match is None:
        return None
    prefix = match.group(2).strip("/")
    access_name, secret_name = KEY_NAMES[version]
    access, secret = properties.get(access_name, ""), properties.get(secret_name, "")
    token = None
    if not access:
        access, secret, token = _profile_keys()
    endpoint = properties.get("alluxio.underfs.s3.endpoint", "").strip() or "https://s3.amazonaws.com"
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    region = properties.get("alluxio.underfs.s3.endpoint.region", "").strip() or "us-east-1"
    return Ufs(endpoint, match.group(1), f"{prefix}/" if prefix else "", region, access, secret, token)


def _profile_keys() -> tuple[str, str, str | None]:
    path = os.environ.get("AWS_CREDENTIAL_PROFILES_FILE") or os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
    if not path:
        return "", "", None
    parser = configparser.ConfigParser()
    parser.read(path)
    section = parser["default"] if parser.has_section("default") else {}
    return (section.get("aws_access_key_id", ""), section.get("aws_secret_access_key", ""),
            section.get("aws_session_token") or None)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _sign(method: str, host: str, path: str, data: bytes, ufs: Ufs) -> dict[str, str]:
    """AWS Signature Version 4 headers for one request (no query string)."""
    now = datetime.datetime.now(datetime.UTC)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload_hash = hashlib.sha256(data).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": stamp}
    if ufs.token:
        headers["x-amz-security-token"] = ufs.token
    names = sorted(headers)
    canonical = "\n".join([method, path, "", *(f"{n}:{headers[n]}" for n in names), "", ";".join(names), payload_hash])
    scope = f"{day}/{ufs.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{ufs.secret}".encode(), day), ufs.region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={ufs.access}/{scope}, SignedHeaders={';'.join(names)}, "
                                f"Signature={signature}")
    del headers["host"]
    return headers
