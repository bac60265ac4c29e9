"""Where an image build's own files come from: this checkout, or the installed ``provision-min``.

A build needs ``install-node.sh`` and the unit files, the agent's wheel and, for a stand-in image, the
stand-ins. The script and the units are package data of ``image`` (``image/install-node.sh``; ``image/units``,
in a checkout a link to ``systemd/``), so a wheel install carries them. The wheels: in a checkout
(``pyproject.toml`` beside the packages) they are built from the sources as always; an installed distribution
has no ``pyproject.toml``, so its wheel is made again from its own installed files (its ``RECORD``), which are
exactly what its wheel held. The stand-ins are a distribution of their own: installed, they are repacked the
same way; an editable install of either points at its checkout, whose sources are used.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import zipfile
from pathlib import Path

from image.recipe import PROJECT_DIR, STANDINS_DIR, BuildError

IMAGE_DIR = Path(__file__).resolve().parent
INSTALL_SCRIPT = IMAGE_DIR / "install-node.sh"
UNITS = IMAGE_DIR / "units"
AGENT_DISTRIBUTION = "bootstrap-agent"
STANDINS_DISTRIBUTION = "bootstrap-agent-standins"
#: Installed-only files of a dist-info folder, not part of the wheel (RECORD is written anew).
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def is_checkout(project_dir: Path = PROJECT_DIR) -> bool:
    """A source tree (the wheel is built from it), not an installed distribution."""
    return (project_dir / "pyproject.toml").is_file() and (project_dir / "bootstrap_agent").is_dir()


def standins_checkout(project_dir: Path = PROJECT_DIR) -> Path | None:
    """The stand-ins' sources, when this is a checkout that has them."""
    source = project_dir / STANDINS_DIR
    return source if is_checkout(project_dir) and (source / "pyproject.toml").is_file() else None


def standins_missing(project_dir: Path = PROJECT_DIR) -> str | None:
    """Why a stand-in image cannot be built here (no stand-ins' sources, none installed), or None."""
    if standins_checkout(project_dir) is not None:
        return None
    try:
        importlib.metadata.distribution(STANDINS_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return f"{STANDINS_DISTRIBUTION} is not installed (pip install it, or run from its source tree)"
    return None


def repack(name: str, out_dir: Path, *, skip_top: tuple[str, ...] = ()) -> Path:
    """The wheel of the installed distribution ``name``, made from its installed files (no byte code, no
    scripts outside site-packages, no top-level folder of ``skip_top``); ``BuildError`` when it is not installed
    from a wheel."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise BuildError(f"{name} is not installed (pip install it, or run from its source tree)") from None
    direct = dist.read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        raise BuildError(f"{name} is an editable install: build from its source tree instead")
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts
             and f.suffix not in (".pyc", ".pyo") and f.parts[0] not in skip_top
             and not (f.parts[0].endswith(".dist-info") and f.name in _INSTALLER_FILES)]
    info = next((f.parts[0] for f in files if f.parts[0].endswith(".dist-info")), None)
    wheel_text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_text.splitlines() if line.startswith("Tag:")]
    if info is None or not tags:
        raise BuildError(f"{name}: its installed files name no dist-info with a WHEEL tag")
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [list(dict.fromkeys(tag.split("-")[i] for tag in tags)) for i in range(3)]  # py2.py3-none-any
    target = out_dir / f"{info.removesuffix('.dist-info')}-{'-'.join('.'.join(part) for part in parts)}.whl"
    records: list[str] = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in sorted(files, key=lambda f: (f.parts[0] == info, str(f))):  # dist-info last, as wheels do
            data = Path(str(file.locate())).read_bytes()
            wheel.writestr(str(file), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{file},sha256={digest},{len(data)}")
        records.append(f"{info}/RECORD,,")
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")
    return target
