"""A real S3 endpoint on loopback for the provisioner's OBS checks: moto's server, with IAM authentication on.

Started with authentication off just long enough to create the users, their keys and policies; then
``/moto-api/reset-auth`` turns it on, so a wrong access key id is answered ``InvalidAccessKeyId``, a wrong
secret ``SignatureDoesNotMatch`` and a user without rights ``AccessDenied`` — as OBS would.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import ThreadedMotoServer
from werkzeug.serving import make_server

ALL_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass
class S3Server:
    endpoint: str
    access_key: str  # may list and create buckets
    secret_key: str
    denied_access_key: str  # a known user without any S3 right
    denied_secret_key: str

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="eu-de",
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-de"})

    def bucket_exists(self, name: str) -> bool:
        names = [b["Name"] for b in self.client().list_buckets().get("Buckets", [])]
        return name in names


def _post(endpoint: str, path: str, data: str = "") -> None:
    request = urllib.request.Request(
        f"{endpoint}{path}", data=data.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
        answer.read()


def _reset_auth(endpoint: str, count: str) -> None:
    _post(endpoint, "/moto-api/reset-auth", count)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on loopback, started from nothing (its state is per process); yields the endpoint."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _reset_auth(endpoint, "inf")
        _post(endpoint, "/moto-api/reset")
        yield endpoint
    finally:
        server.stop()


IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux <linux/in.h>; Python does not export it


@contextmanager
def moto_server_on(address: str) -> Iterator[str]:
    """moto's server (authentication off) on one address of a bridge the test's cluster owns, so that its nodes
    reach it: never 0.0.0.0 nor a public interface. Bound with ``IP_FREEBIND``, so it can start before the
    bridge carries the address (the local cloud's ``up`` makes the bridge, then boots nodes at once); until then
    nobody can connect. Nothing is answered from anywhere else; yields ``http://<address>:<port>``."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        listener.bind((address, 0))
        listener.listen(128)
        server = make_server(address, 0, DomainDispatcherApplication(create_backend_app), threaded=True,
                             fd=listener.fileno())  # werkzeug serves a duplicate of the descriptor
    finally:
        listener.close()
    thread = threading.Thread(target=server.serve_forever, name=f"moto-{address}", daemon=True)
    thread.start()
    try:
        yield f"http://{address}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def moto_s3() -> Iterator[S3Server]:
    """moto with authentication on: a user who may use S3 and one who may not (their keys in ``S3Server``)."""
    with moto_server() as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        keys = {}
        for user, policy in (("obs-writer", ALL_S3), ("obs-nobody", None)):
            iam.create_user(UserName=user)
            if policy is not None:
                iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
            keys[user] = iam.create_access_key(UserName=user)["AccessKey"]
        _reset_auth(endpoint, "0")
        try:
            yield S3Server(endpoint, keys["obs-writer"]["AccessKeyId"], keys["obs-writer"]["SecretAccessKey"],
                           keys["obs-nobody"]["AccessKeyId"], keys["obs-nobody"]["SecretAccessKey"])
        finally:
            _reset_auth(endpoint, "inf")
