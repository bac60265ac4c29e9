"""Extract the valid Mesos flag names and Alluxio property keys from an upstream source tree.

This is the tool that produced ``bootstrap_agent/data/names/*.txt``.  It is not run in CI: it needs a
checkout (or a bare git directory) of apache/mesos or Alluxio/alluxio, which the project does not ship.

    python3 -m tools.extract_names mesos   REPO_DIR master|agent [--rev TAG]
    python3 -m tools.extract_names alluxio REPO_DIR [--rev TAG]

Without ``--rev`` the files are read from the work tree ``REPO_DIR``.  With ``--rev`` they are read with
``git show REV:PATH`` from the repository at ``REPO_DIR`` (a bare git directory works), and the header
names the commit.  The output is the complete data file: ``#`` header lines, then one name a line, sorted.

The extraction is a plain source scan, not a compiler: it looks for the registration calls that the
upstream code uses (``add(&Flags::x, "x", ...)`` in Mesos, ``public static final PropertyKey X = ...``
in Alluxio) and resolves the names they use.  It fails loudly when the sources do not look the way it
expects, rather than quietly producing a short list.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tools.alluxio_names import extract_alluxio
from tools.mesos_names import MESOS_ROLE_DIR, extract_mesos, mesos_member_types
from tools.source_tree import SourceTree

__all__ = ["extract_alluxio", "extract_mesos", "main", "mesos_member_types"]


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="project", required=True)
    mesos = sub.add_parser("mesos", help="flag names of mesos-master / mesos-agent")
    mesos.add_argument("repo", type=Path, metavar="REPO_DIR")
    mesos.add_argument("role", choices=sorted(MESOS_ROLE_DIR), metavar="ROLE")
    alluxio = sub.add_parser("alluxio", help="Alluxio property keys")
    alluxio.add_argument("repo", type=Path, metavar="REPO_DIR")
    for p in (mesos, alluxio):
        p.add_argument("--rev", help="read the files at this git revision (tag) instead of the work tree")
        p.add_argument("--no-header", action="store_true", help="print the names only")
        p.add_argument("--note", action="append", default=[], help="an extra header line (repeatable)")
    args = parser.parse_args(argv)

    tree = SourceTree(args.repo, args.rev)
    if args.project == "mesos":
        header, names = extract_mesos(tree, args.role)
    else:
        header, names = extract_alluxio(tree)
    if not args.no_header:
        header += args.note
        header.append(f"{len(names)} names follow, one a line, sorted.")
        sys.stdout.write("".join(f"# {line}".rstrip() + "\n" for line in header))
    sys.stdout.write("".join(f"{name}\n" for name in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
