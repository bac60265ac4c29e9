"""Service endpoints from the token's catalog; the documented eu-de style hosts only as the fallback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# Catalog type -> the path below the host that the documented API calls start from (the project id follows).
SERVICES: dict[str, str] = {"vpc": "/v1", "ecs": "/v1", "as": "/autoscaling-api/v1"}
FALLBACK_HOST = "https://{service}.{region}.otc.t-systems.com"
URL_TEMPLATES = ("$(tenant_id)s", "%(tenant_id)s", "$(project_id)s", "%(project_id)s", "{project_id}", "{tenant_id}")


@dataclass(frozen=True)
class Endpoints:
    """Base URL of each service, ending with the project id; the documented paths are appended to it."""

    vpc: str
    ecs: str
    as_: str

    def base(self, service: str) -> str:
        return {"vpc": self.vpc, "ecs": self.ecs, "as": self.as_}[service]


def fallback_endpoints(region: str, project_id: str) -> Endpoints:
    """The documented hosts (``https://vpc.eu-de.otc.t-systems.com/v1/{project_id}``, ...)."""
    host = FALLBACK_HOST.format
    urls = {svc: host(service=svc, region=region) + path + "/" + project_id for svc, path in SERVICES.items()}
    return Endpoints(vpc=urls["vpc"], ecs=urls["ecs"], as_=urls["as"])


def endpoints_from_catalog(catalog: Any, region: str, project_id: str) -> tuple[Endpoints, list[str]]:
    """Endpoints from the token's catalog; the second value names services that fell back to the table."""
    urls: dict[str, str] = {}
    fallback: list[str] = []
    entries = catalog if isinstance(catalog, list) else []
    for service, version_path in SERVICES.items():
        url = _catalog_url(entries, service, region)
        if url is None:
            fallback.append(service)
            urls[service] = FALLBACK_HOST.format(service=service, region=region) + version_path + "/" + project_id
            continue
        for template in URL_TEMPLATES:
            url = url.replace(template, project_id)
        url = url.rstrip("/")
        path = urlsplit(url).path.rstrip("/")
        if path.endswith("/" + project_id):
            urls[service] = url
        elif path.endswith(version_path):
            urls[service] = f"{url}/{project_id}"
        else:
            urls[service] = f"{url}{version_path}/{project_id}"
    return Endpoints(vpc=urls["vpc"], ecs=urls["ecs"], as_=urls["as"]), fallback


def _catalog_url(entries: list[Any], service: str, region: str) -> str | None:
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != service:
            continue
        endpoints = [e for e in entry.get("endpoints") or [] if isinstance(e, dict) and e.get("url")]
        public = [e for e in endpoints if e.get("interface", "public") == "public"]
        in_region = [e for e in public if e.get("region") in (None, region) or e.get("region_id") == region]
        for choice in (in_region, public):
            if choice:
                return str(choice[0]["url"])
    return None
