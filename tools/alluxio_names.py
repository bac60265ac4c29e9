"""Alluxio property keys: every ``public static final PropertyKey`` with its name resolved, aliases, tier
templates filled in, removed keys left out (for ``tools/extract_names.py``)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

from tools.source_tree import SourceTree, balanced_args, java_string, provenance, strip_comments

# --------------------------------------------------------------------------------------------------
# Alluxio

ALLUXIO_PROPERTY_KEY_PATHS = (
    "core/common/src/main/java/alluxio/conf/PropertyKey.java",  # 2.x
    "core/common/src/main/java/alluxio/PropertyKey.java",  # 1.x
)
ALLUXIO_REMOVED_KEY_PATH = "core/common/src/main/java/alluxio/conf/RemovedKey.java"
ALLUXIO_CONSTANTS_PATH = "core/common/src/main/java/alluxio/Constants.java"
TIER_LEVELS = (0, 1, 2)

STRING_CONST_RE = re.compile(r"\b(?:public\s+|private\s+)?static\s+final\s+String\s+(\w+)\s*=\s*([^;]+);")
KEY_DECL_RE = re.compile(r"\bpublic\s+static\s+final\s+PropertyKey\s+(\w+)\s*=")
BUILDER_CALL_RE = re.compile(r"(?:\bnew\s+Builder|\b\w*[bB]uilder)\s*\(")
TEMPLATE_RE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\(\s*(\"[^\"]*\")", re.MULTILINE)
STRING_OR_REF_RE = re.compile(r"\"(?:[^\"\\]|\\.)*\"|\b(?:Name|Constants)\.\w+")


def _resolve(expr: str, consts: dict[str, str]) -> str:
    """Value of an expression made of string literals and Name./Constants. references joined by +."""
    parts = STRING_OR_REF_RE.findall(expr)
    rest = STRING_OR_REF_RE.sub("", expr).replace("+", "").strip()
    if not parts or rest:
        raise ValueError(f"cannot resolve {expr!r}")
    return "".join(java_string(p) if p.startswith('"') else consts[p.split(".")[1]] for p in parts)


def _string_constants(code: str) -> dict[str, str]:
    raw = {m[1]: m[2] for m in STRING_CONST_RE.finditer(code)}
    consts: dict[str, str] = {}
    for _ in range(3):  # constants may refer to each other
        for name, expr in raw.items():
            with contextlib.suppress(ValueError, KeyError):
                consts[name] = _resolve(expr, consts)
    return consts


def _templates(code: str) -> dict[str, str]:
    start = code.find("enum Template")
    if start < 0:
        raise SystemExit("PropertyKey.java: no 'enum Template'")
    body = code[start : code.find(";", code.find("{", start))]
    return {m[1]: java_string(m[2]) for m in TEMPLATE_RE.finditer(body)}


def _format_template(fmt: str, args: list[str]) -> str:
    values = iter(args)
    return re.sub(r"%[sd]", lambda _m: next(values), fmt)


def _arg_value(arg: str, consts: dict[str, str]) -> str:
    if re.fullmatch(r"-?\d+", arg):
        return arg
    return _resolve(arg, consts)


@dataclass
class AlluxioKeys:
    keys: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> key
    from_templates: set[str] = field(default_factory=set)


def _parse_keys(code: str, consts: dict[str, str], templates: dict[str, str]) -> AlluxioKeys:
    result = AlluxioKeys()
    decls = list(KEY_DECL_RE.finditer(code))
    for i, decl in enumerate(decls):
        end = decls[i + 1].start() if i + 1 < len(decls) else len(code)
        stmt = code[decl.end() : code.find(";", decl.end(), end) + 1 or end]
        call = BUILDER_CALL_RE.search(stmt)
        if not call:
            raise SystemExit(f"PropertyKey {decl[1]}: no builder call in {stmt[:80]!r}")
        args, _ = balanced_args(stmt, call.end() - 1)
        # The key is the first argument that is a Name.X constant, a literal or a Template.X (with the
        # template's parameters after it); type and delimiter arguments (PropertyType.*, Optional.*) go.
        first = next((k for k, a in enumerate(args) if re.match(r'(Name\.|Template\.|")', a)), None)
        if first is None:
            raise SystemExit(f"PropertyKey {decl[1]}: no key name among {args!r}")
        args = args[first:]
        if args[0].startswith("Template."):
            name = _format_template(
                templates[args[0].split(".")[1]], [_arg_value(a, consts) for a in args[1:]]
            )
            result.from_templates.add(name)
        else:
            name = _resolve(args[0], consts)
        result.keys.add(name)
        for alias_call in re.finditer(r"\.setAlias\s*\(", stmt):
            alias_args, _ = balanced_args(stmt, alias_call.end() - 1)
            for token in STRING_OR_REF_RE.findall(" ".join(alias_args)):
                result.aliases[_resolve(token, consts)] = name
    return result


def extract_alluxio(tree: SourceTree) -> tuple[list[str], list[str]]:
    """Return (header lines, sorted names) for the Alluxio release in ``tree``."""
    path = next((p for p in ALLUXIO_PROPERTY_KEY_PATHS if tree.exists(p)), None)
    if path is None:
        raise SystemExit("no PropertyKey.java at " + " or ".join(ALLUXIO_PROPERTY_KEY_PATHS))
    files = [path]
    code = strip_comments(tree.read(path))
    consts = _string_constants(code)
    if tree.exists(ALLUXIO_CONSTANTS_PATH):
        files.append(ALLUXIO_CONSTANTS_PATH)
        for name, value in _string_constants(strip_comments(tree.read(ALLUXIO_CONSTANTS_PATH))).items():
            consts.setdefault(name, value)
    templates = _templates(code)
    parsed = _parse_keys(code, consts, templates)

    expanded: set[str] = set()
    skipped: list[str] = []
    for tname, fmt in sorted(templates.items()):
        if ".tieredstore." in fmt and fmt.count("%d") == 1 and "%s" not in fmt:
            expanded |= {fmt.replace("%d", str(level)) for level in TIER_LEVELS}
        elif "%" not in fmt:  # a template without parameters: its one key is declared and listed
            continue
        else:
            skipped.append(f"  {tname}: {fmt}")

    names = parsed.keys | set(parsed.aliases) | expanded
    removed: set[str] = set()
    if tree.exists(ALLUXIO_REMOVED_KEY_PATH):
        files.append(ALLUXIO_REMOVED_KEY_PATH)
        removed_code = strip_comments(tree.read(ALLUXIO_REMOVED_KEY_PATH))
        removed = {java_string(m) for m in re.findall(r"\bput\(\s*(\"[^\"]*\")", removed_code)}
    else:
        files.append(f"(no {ALLUXIO_REMOVED_KEY_PATH.rsplit('/', 1)[1]} in this release)")
    dropped = sorted(names & removed)
    names -= removed

    for must in ("alluxio.master.hostname", "alluxio.worker.tieredstore.level0.dirs.path"):
        if must not in names:
            raise SystemExit(f"key {must!r} not found: the sources do not look as expected")

    header = [
        "Alluxio property keys (alluxio-site.properties / -D<key>=<value>) that this release knows.",
        *provenance(tree, "Alluxio/alluxio"),
        "Files read: " + ", ".join(files),
        "Extracted by tools/extract_names.py: the key of every 'public static final PropertyKey'",
        "declaration in PropertyKey.java (Name.* constants, string literals, or Template.X(args) resolved),",
        "plus every .setAlias(...) name, plus the tier-level templates expanded for levels "
        + ", ".join(map(str, TIER_LEVELS))
        + ".",
        f"Counts: {len(parsed.keys)} declared keys ({len(parsed.from_templates)} of them template"
        f" instances), {len(set(parsed.aliases) - parsed.keys)} alias names,"
        f" {len(expanded - parsed.keys)} extra tier keys.",
        "Templates NOT expanded (any instance of these patterns is also accepted by Alluxio):",
        *skipped,
    ]
    if removed:
        header.append(f"RemovedKey.java lists {len(removed)} removed keys; none of them is listed here.")
    if dropped:
        header.append("Left out although PropertyKey.java still maps them (alias -> key), because")
        header.append("RemovedKey.java declares them removed (do not render them):")
        header += [f"  {d} -> {parsed.aliases.get(d, '(declared key)')}" for d in dropped]
    return header, sorted(names)
