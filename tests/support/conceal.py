"""Reading a URL as another uid, for the metadata concealment tests (tests/test_conceal*.py).

The script runs as that uid on the node (in a namespace or a booted container), so it is stdlib only and
runs on the system's python3; it prints ``<status> <body>`` or ``refused: <why>``.
"""

from __future__ import annotations

FETCH_SCRIPT = (
    "import sys, urllib.request\n"
    "try:\n"
    "    r = urllib.request.build_opener(urllib.request.ProxyHandler({})).open(sys.argv[1], timeout=3)\n"
    "    print(r.status, r.read().decode())\n"
    "except OSError as e:\n"
    "    print('refused:', getattr(e, 'reason', e))\n"
)


def fetch_argv(python: str, url: str, uid: int | None = None) -> list[str]:
    """The command that GETs ``url`` as ``uid`` (no groups; None: as the caller)."""
    prefix = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    return [*prefix, python, "-I", "-c", FETCH_SCRIPT, url]
