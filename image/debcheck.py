"""Will a given Mesos .deb install on the image's base? Checked on the build host before anything is built.

Mesos packages built for older releases (Mesosphere's, for Debian 8/9 and Ubuntu 16.04) depend on packages
that Debian 12 (bookworm) no longer has, ``libcurl3`` first of all; found only after debootstrap and the
package downloads, or on a build ECS, that costs minutes and says it badly. So ``check_deb`` reads the
package's ``Depends``/``Pre-Depends`` (``dpkg-deb -f``) and looks each alternative up among the apt candidates
of this machine, which the builders require to be Debian 12 with the mirror the image is built from
(``image.local.debian_mirror``). A real package name must have a candidate whose version satisfies the
relation; a name no package has but some package provides (``java-runtime-headless``) counts without a version.

``install-node.sh`` checks again inside the base itself, with apt's own resolver (``apt-get install
--simulate``), before it installs anything: that also covers the OTC builder, whose .deb is usually a URL.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from image.recipe import BuildError

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]
_RELATION = re.compile(r"^\s*(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::[a-z0-9\-]+)?\s*"
                       r"(?:\(\s*(?P<op><<|<=|=|>=|>>)\s*(?P<version>[^)\s]+)\s*\))?\s*(?:\[[^\]]*\])?\s*$")


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})


@dataclass(frozen=True)
class Relation:
    name: str
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.name} ({self.op} {self.version})" if self.op else self.name


def parse_depends(text: str) -> list[list[Relation]]:
    """``a (>= 1), b | c`` → [[a>=1], [b, c]]: every group must be met by one of its alternatives."""
    groups: list[list[Relation]] = []
    for group in (g for g in text.replace("\n", " ").split(",") if g.strip()):
        alternatives = []
        for alternative in group.split("|"):
            match = _RELATION.match(alternative)
            if match is None:
                raise BuildError(f"cannot read the dependency {alternative.strip()!r}")
            alternatives.append(Relation(match["name"], match["op"], match["version"]))
        groups.append(alternatives)
    return groups


def deb_depends(deb: Path, run: Runner = _run) -> tuple[str, list[list[Relation]]]:
    """The package's name and its ``Pre-Depends`` + ``Depends`` groups."""
    fields = run(["dpkg-deb", "-f", str(deb), "Package", "Pre-Depends", "Depends"])
    if fields.returncode != 0:
        raise BuildError(f"{deb}: not a Debian package ({fields.stderr.strip() or 'dpkg-deb failed'})")
    values: dict[str, str] = {}
    key = ""
    for line in fields.stdout.splitlines():
        if line[:1].isspace() and key:
            values[key] += " " + line.strip()
        elif ":" in line:
            key, _sep, value = line.partition(":")
            values[key] = value.strip()
    text = ", ".join(v for v in (values.get("Pre-Depends", ""), values.get("Depends", "")) if v)
    return values.get("Package", deb.name), parse_depends(text)


class AptCandidates:
    """Versions apt would install on this machine (``apt-cache policy``), and which names are only provided."""

    def __init__(self, run: Runner = _run) -> None:
        self.run = run
        self._candidates: dict[str, str | None] = {}

    def load(self, names: Sequence[str]) -> None:
        wanted = sorted(set(names) - set(self._candidates))
        if not wanted:
            return
        out = self.run(["apt-cache", "policy", *wanted]).stdout
        current = None
        for line in out.splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                current = line[:-1].split(":")[0]
            elif current and line.strip().startswith("Candidate:"):
                value = line.split(":", 1)[1].strip()
                self._candidates[current] = None if value == "(none)" else value
        for name in wanted:
            self._candidates.setdefault(name, None)

    def candidate(self, name: str) -> str | None:
        self.load([name])
        return self._candidates[name]

    def provided(self, name: str) -> bool:
        out = self.run(["apt-cache", "showpkg", name]).stdout
        _head, sep, rest = out.partition("Reverse Provides:")
        return bool(sep and rest.strip())

    def satisfies(self, relation: Relation) -> bool:
        version = self.candidate(relation.name)
        if version is None:
            return relation.op is None and self.provided(relation.name)
        if relation.op is None or relation.version is None:
            return True
        op = {"<<": "lt", "<=": "le", "=": "eq", ">=": "ge", ">>": "gt"}[relation.op]
        return self.run(["dpkg", "--compare-versions", version, op, relation.version]).returncode == 0


def unmet(groups: list[list[Relation]], apt: AptCandidates) -> list[str]:
    """Each group no alternative of which the base can install, with what the base has instead."""
    apt.load([r.name for group in groups for r in group])
    missing = []
    for group in groups:
        if any(apt.satisfies(relation) for relation in group):
            continue
        shown = " | ".join(str(r) for r in group)
        have = [f"{r.name} {apt.candidate(r.name)}" for r in group if apt.candidate(r.name)]
        missing.append(shown + (f" (Debian 12 has {', '.join(have)})" if have else ""))
    return missing


def check_deb(deb: Path, variable: str = "MESOS_DEB", run: Runner = _run) -> None:
    """Raise ``BuildError`` with one line naming every dependency Debian 12 cannot meet; else return."""
    if not deb.is_file():
        raise BuildError(f"{variable} {deb} does not exist")
    package, groups = deb_depends(deb, run)
    missing = unmet(groups, AptCandidates(run))
    if missing:
        raise BuildError(f"{variable} {deb.name}: {package} cannot be installed on Debian 12 (bookworm), "
                         f"which lacks: {'; '.join(missing)} (see image/README.md, 'Mesos on Debian 12')")
