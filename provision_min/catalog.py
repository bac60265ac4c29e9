"""Service endpoints from the token's catalog; the documented eu-de style hosts only as the fallback.

Each client names the services it calls (the provisioner VPC, ECS and AS; the image builder ECS, IMS and
OBS), so a catalog without IMS is no reason for the provisioner to warn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Service:
    """Where a service's documented calls start: its catalog type and the path below the host."""

    type: str
    path: str  #: "{project_id}" is filled in; "" for APIs called at the host (OBS's S3 API)


PROJECT = "{project_id}"
SERVICES: dict[str, Service] = {
    "vpc": Service("vpc", "/v1/" + PROJECT),
    "ecs": Service("ecs", "/v1/" + PROJECT),  # also its asynchronous jobs: /jobs/{job_id}
    "as": Service("as", "/autoscaling-api/v1/" + PROJECT),
    "ims": Service("ims", "/v2"),  # the image calls (/cloudimages, /images) are not project-scoped
    "ims_jobs": Service("ims", "/v1/" + PROJECT),  # IMS's asynchronous jobs: /jobs/{job_id}
    "obs": Service("obs", ""),
    "smn": Service("smn", "/v2/" + PROJECT),  # the lifecycle hook's notification topic
}
PROVISIONER_SERVICES = ("vpc", "ecs", "as", "smn")
FALLBACK_HOST = "https://{service}.{region}.otc.t-systems.com"
URL_TEMPLATES = ("$(tenant_id)s", "%(tenant_id)s", "$(project_id)s", "%(project_id)s", "{project_id}", "{tenant_id}")


@dataclass(frozen=True)
class Endpoints:
    """Base URL of each service (ending with the project id where its calls are project-scoped); the
    documented paths are appended to it."""

    urls: Mapping[str, str]

    def base(self, service: str) -> str:
        return self.urls[service]

    @property
    def vpc(self) -> str:
        return self.urls["vpc"]

    @property
    def ecs(self) -> str:
        return self.urls["ecs"]

    @property
    def as_(self) -> str:
        return self.urls["as"]


def _fallback(service: str, region: str, project_id: str) -> str:
    spec = SERVICES[service]
    return FALLBACK_HOST.format(service=spec.type, region=region) + spec.path.replace(PROJECT, project_id)


def fallback_endpoints(region: str, project_id: str, services: Sequence[str] = PROVISIONER_SERVICES) -> Endpoints:
    """The documented hosts (``https://vpc.eu-de.otc.t-systems.com/v1/{project_id}``, ...)."""
    return Endpoints({service: _fallback(service, region, project_id) for service in services})


def endpoints_from_catalog(
    catalog: Any, region: str, project_id: str, services: Sequence[str] = PROVISIONER_SERVICES
) -> tuple[Endpoints, list[str]]:
    """Endpoints from the token's catalog; the second value names services that fell back to the table."""
    urls: dict[str, str] = {}
    fallback: list[str] = []
    entries = catalog if isinstance(catalog, list) else []
    for service in services:
        spec = SERVICES[service]
        url = _catalog_url(entries, spec.type, region)
        if url is None:
            fallback.append(service)
            urls[service] = _fallback(service, region, project_id)
            continue
        for template in URL_TEMPLATES:
            url = url.replace(template, project_id)
        url = url.rstrip("/")
        path = urlsplit(url).path.rstrip("/")
        full = spec.path.replace(PROJECT, project_id)
        version = spec.path.removesuffix("/" + PROJECT)
        if path.endswith(full):
            urls[service] = url
        elif version != spec.path and path.endswith(version):
            urls[service] = f"{url}/{project_id}"
        else:
            urls[service] = url + full
    return Endpoints(urls), fallback


def _catalog_url(entries: list[Any], service_type: str, region: str) -> str | None:
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != service_type:
            continue
        endpoints = [e for e in entry.get("endpoints") or [] if isinstance(e, dict) and e.get("url")]
        public = [e for e in endpoints if e.get("interface", "public") == "public"]
        in_region = [e for e in public if e.get("region") in (None, region) or e.get("region_id") == region]
        for choice in (in_region, public):
            if choice:
                return str(choice[0]["url"])
    return None
