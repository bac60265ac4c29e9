"""The ``alluxio`` and ``credentials`` sections: the S3/OBS under-FS, its tier 0, and the keys that reach it."""

from __future__ import annotations

import re
from typing import Any

from bootstrap_agent import names
from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.ramdisk import AUTO, RamDisk, parse_ramdisk
from bootstrap_agent.schema.readers import read_choice, read_object, read_size, read_string, read_url, required
from bootstrap_agent.schema.settings import AlluxioSettings, Credentials

ALLUXIO_KEYS = frozenset({"version", "root_ufs", "s3_endpoint", "s3_region", "block_size", "worker_ramdisk"})
CREDENTIAL_KEYS = frozenset({"source", "access_key_id", "secret_access_key"})
BUCKET_UFS = re.compile(r"^(s3a?)://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/[^\s]*)?$")
S3_REGION = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+){1,3}$")  # eu-de, eu-nl, us-east-1, cn-north-4
ACCESS_KEY = re.compile(r"^[A-Za-z0-9+/=._-]{8,256}$")
MIN_BLOCK_SIZE = 1 << 20  # Alluxio's default is 64MB; the original tool's "-b 4" meant 4 MB, not 4 bytes


def parse_alluxio(value: Any) -> AlluxioSettings:
    obj = read_object(value, "alluxio", ALLUXIO_KEYS)
    version = read_choice(obj.get("version", AlluxioSettings.version), "alluxio.version", names.ALLUXIO_VERSIONS)
    root_ufs = read_string(required(obj, "root_ufs", "alluxio"), "alluxio.root_ufs")
    if not BUCKET_UFS.match(root_ufs):
        raise InvalidInput(
            "alluxio.root_ufs", f"{root_ufs!r} must be s3://bucket/path or s3a://bucket/path (a valid bucket name)"
        )
    endpoint = None
    if "s3_endpoint" in obj:
        endpoint = read_url(obj["s3_endpoint"], "alluxio.s3_endpoint")
    block_size = None
    if "block_size" in obj:
        block_size = read_size(obj["block_size"], "alluxio.block_size", minimum=MIN_BLOCK_SIZE, meant="MB")
    ramdisk: RamDisk = AUTO
    if "worker_ramdisk" in obj:
        ramdisk = parse_ramdisk(obj["worker_ramdisk"], "alluxio.worker_ramdisk", can_be_off=False)
    region = None
    if "s3_region" in obj:
        region = read_string(obj["s3_region"], "alluxio.s3_region")
        if not S3_REGION.match(region):
            raise InvalidInput("alluxio.s3_region", f"{region!r} is not a region name such as eu-de")
    return AlluxioSettings(root_ufs, version, endpoint, block_size, ramdisk, region)


def parse_credentials(value: Any) -> Credentials:
    obj = read_object(value, "credentials", CREDENTIAL_KEYS)
    source = read_choice(required(obj, "source", "credentials"), "credentials.source", ("keys", "agency"))
    if source == "agency":
        for key in ("access_key_id", "secret_access_key"):
            if key in obj:
                raise InvalidInput(f"credentials.{key}", "not used with source 'agency' (keys come from the cloud)")
        return Credentials("agency")
    keys = {}
    for key in ("access_key_id", "secret_access_key"):
        path = f"credentials.{key}"
        if key not in obj:
            raise InvalidInput(path, "required with source 'keys'")
        text = read_string(obj[key], path)
        if not ACCESS_KEY.match(text):
            raise InvalidInput(path, "must be 8-256 characters of A-Z, a-z, 0-9, '+/=._-'")
        keys[key] = text
    return Credentials("keys", keys["access_key_id"], keys["secret_access_key"])
