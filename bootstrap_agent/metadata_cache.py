"""The node's nginx cache in front of the metadata service's user-data.

The agent never asks the metadata service directly for its user-data: it reads ``http://localhost/user-data``
from the node's own nginx, which caches the answer on disk. When the metadata service is slow, down or
answers 5xx, nginx serves the last good copy (``X-Cache-Status: STALE``), also after nginx itself restarted,
so a reboot during a metadata outage still finds its configuration.

The machine image bakes this text into ``/etc/nginx/conf.d/`` and the tests wrap the very same text into a
full ``nginx.conf``; keeping it in one function means what the tests prove is what the image runs.
"""

from __future__ import annotations

import re

#: Where OpenStack (and Open Telekom Cloud) serve a server's metadata, from inside the server.
METADATA_UPSTREAM = "169.254.169.254"
#: The path of the user-data on the metadata service.
USER_DATA_UPSTREAM_PATH = "/openstack/latest/user_data"
#: What the agent requests from the local nginx (the default ``--user-data-url`` is http://localhost + this).
USER_DATA_LOCAL_PATH = "/user-data"

#: Upstream headers that would stop nginx from caching (nginx's ``proxy_ignore_headers`` documentation: they
#: "set the parameters of response caching"). A metadata service answering ``Cache-Control: no-store`` or
#: ``Expires: 0`` would otherwise leave no copy to serve while it is down; how long a copy counts as fresh is
#: ours to decide (``proxy_cache_valid``), not the metadata service's.
IGNORED_UPSTREAM_HEADERS = ("X-Accel-Expires", "Expires", "Cache-Control", "Set-Cookie", "Vary")

# Values end up verbatim in nginx syntax: refuse anything that could end a directive or open a block.
_SAFE = re.compile(r"^[A-Za-z0-9_.:/\[\]-]+$")
_ZONE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _checked(name: str, value: str, pattern: re.Pattern[str] = _SAFE) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{name}: {value!r} is not usable in an nginx configuration")
    return value


def render_metadata_cache_conf(
    upstream: str = METADATA_UPSTREAM,
    *,
    cache_dir: str = "/var/cache/nginx/metadata",
    zone: str = "ud",
    listen: str = "127.0.0.1:80",
) -> str:
    """Return the nginx text (http context: one ``proxy_cache_path`` and one ``server`` block) of the cache.

    ``upstream`` is ``host[:port]`` of the metadata service. The ``proxy_cache_path`` line has to live in the
    http context, not in ``server``; a file in ``conf.d/`` is included there, so the whole text is one file.
    ``inactive=7d`` keeps the last good copy on disk long after its 1 s validity: validity only decides when
    nginx asks upstream again, ``proxy_cache_use_stale`` decides that an old copy beats an error.
    ``proxy_ignore_headers`` keeps the metadata service's own caching headers from vetoing the copy.
    """
    upstream = _checked("upstream", upstream)
    cache_dir = _checked("cache_dir", cache_dir)
    zone = _checked("zone", zone, _ZONE)
    listen = _checked("listen", listen)
    if not cache_dir.startswith("/"):
        raise ValueError(f"cache_dir: {cache_dir!r} must be an absolute path")
    return (
        f"# Metadata cache: the agent reads its user-data from http://localhost{USER_DATA_LOCAL_PATH};\n"
        "# the last good copy is served (X-Cache-Status: STALE) while the metadata service fails.\n"
        f"proxy_cache_path {cache_dir} levels=1:2 keys_zone={zone}:1m max_size=10m inactive=7d"
        " use_temp_path=off;\n"
        "\n"
        "server {\n"
        f"    listen {listen};\n"
        "    server_name localhost;\n"
        "\n"
        f"    location {USER_DATA_LOCAL_PATH} {{\n"
        f"        proxy_pass http://{upstream}{USER_DATA_UPSTREAM_PATH};\n"
        f"        proxy_cache {zone};\n"
        f"        proxy_ignore_headers {' '.join(IGNORED_UPSTREAM_HEADERS)};\n"
        "        proxy_cache_valid 200 1s;\n"
        "        proxy_cache_use_stale error timeout http_500 http_502 http_503 http_504;\n"
        "        proxy_connect_timeout 1s;\n"
        "        add_header X-Cache-Status $upstream_cache_status always;\n"
        "    }\n"
        "}\n"
    )
