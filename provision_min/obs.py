"""Check (or create) the Alluxio under-FS bucket with the keys the nodes will use, before anything is built.

A cluster whose bucket is missing or whose keys are wrong boots fine and then fails in Alluxio, minutes
later and on every node. ``up`` therefore lists the bucket through OBS's S3 API with exactly the keys from
the cluster file's ``credentials`` and stops — before the first resource is created — with a message saying
which of the two is wrong. boto3 is imported only here, and only when there is a bucket to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bootstrap_agent import logs
from provision_min.config import ClusterConfig
from provision_min.errors import ObsError

ATTEMPTS = 2  # one retry with botocore's backoff for a hiccup of the endpoint; tests set 1 (no real sleep)
KEY_ERRORS = {
    "InvalidAccessKeyId": "OBS does not know the access key in credentials.access_key_id",
    "SignatureDoesNotMatch": "credentials.secret_access_key does not belong to credentials.access_key_id "
                             "(OBS rejected the signature)",
    "InvalidToken": "OBS rejected the keys in credentials",
    "ExpiredToken": "the keys in credentials have expired",
}


@dataclass(frozen=True)
class ObsTarget:
    bucket: str
    prefix: str
    endpoint: str
    region: str


def target(config: ClusterConfig) -> ObsTarget | None:
    """The bucket the nodes will use, or None when there is nothing to check (no Alluxio)."""
    if config.alluxio is None:
        return None
    parts = urlsplit(str(config.alluxio.get("root_ufs", "")))  # validated as s3(a)://bucket/path by the schema
    if parts.scheme not in ("s3", "s3a") or not parts.netloc:
        raise ObsError("alluxio.root_ufs is not an s3:// URL")
    endpoint = str(config.alluxio.get("s3_endpoint") or f"https://obs.{config.region}.otc.t-systems.com")
    return ObsTarget(bucket=parts.netloc, prefix=parts.path.lstrip("/"), endpoint=endpoint, region=config.region)


def check_bucket(config: ClusterConfig, *, create: bool = False) -> str:
    """Verify the bucket exists and the keys can list it (creating it with ``create``); a line saying so."""
    where = target(config)
    log = logs.get("provision-min")
    if where is None:
        return "no alluxio section: no bucket to check"
    credentials = config.credentials or {}
    if credentials.get("source") != "keys":
        log.warning("obs_check_skipped", reason="credentials.source is agency: the keys only exist on the nodes")
        return (f"bucket {where.bucket} not checked: credentials.source is agency (temporary keys exist only on "
                "the nodes)")
    access_key = str(credentials.get("access_key_id", ""))
    secret_key = str(credentials.get("secret_access_key", ""))
    logs.register_secrets(access_key, secret_key, source="s3-keys")

    from botocore.exceptions import BotoCoreError, ClientError

    client = s3_client(where.endpoint, where.region, access_key, secret_key, attempts=ATTEMPTS,
                       connect_timeout=10, read_timeout=30)

    def list_bucket() -> None:
        client.list_objects_v2(Bucket=where.bucket, Prefix=where.prefix, MaxKeys=1)

    try:
        try:
            list_bucket()
        except ClientError as exc:
            if _code(exc) != "NoSuchBucket" or not create:
                raise
            client.create_bucket(Bucket=where.bucket, CreateBucketConfiguration={"LocationConstraint": where.region})
            log.info("obs_bucket_created", bucket=where.bucket, endpoint=where.endpoint)
            list_bucket()
            return f"bucket {where.bucket} created at {where.endpoint}"
    except ClientError as exc:
        raise ObsError(_explain(exc, where)) from None
    except BotoCoreError as exc:
        raise ObsError(f"cannot reach OBS at {where.endpoint} to check bucket {where.bucket}: {exc}") from None
    log.info("obs_bucket_ok", bucket=where.bucket, endpoint=where.endpoint)
    return f"bucket {where.bucket} exists at {where.endpoint} and the keys can list it"


def s3_client(endpoint: str, region: str, access_key: str, secret_key: str, *, attempts: int,
              **timeouts: float) -> Any:
    """boto3's S3 client for OBS (signature v4, botocore's standard retries), for the bucket check and the
    image builder alike; boto3 is imported here, so only the commands that talk to OBS load it."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", retries={"max_attempts": attempts, "mode": "standard"}, **timeouts),
    )


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _explain(exc: Any, where: ObsTarget) -> str:
    code = _code(exc)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    if code == "NoSuchBucket" or (code in ("404", "NotFound")):
        return (f"OBS bucket {where.bucket} (alluxio.root_ufs) does not exist at {where.endpoint}: create it, or run "
                "up --create-bucket")
    if code in KEY_ERRORS:
        return f"{KEY_ERRORS[code]} (HTTP {status} {code} from {where.endpoint}, bucket {where.bucket})"
    if code in ("AccessDenied", "403", "Forbidden"):
        return (f"the keys in credentials may not list bucket {where.bucket} (HTTP {status} AccessDenied from "
                f"{where.endpoint}): grant them read/write on the bucket")
    message = exc.response.get("Error", {}).get("Message", "")
    return f"OBS check of bucket {where.bucket} failed: HTTP {status} {code} {message}".strip()
