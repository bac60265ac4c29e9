"""Mesos flag names and value types: every ``add(&Flags::member, "name", ...)`` of a role's flags, its base
classes and the C++ type of each member (for ``tools/extract_names.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from tools.source_tree import SourceTree, provenance, strip_comments

# --------------------------------------------------------------------------------------------------
# Mesos


# Macros whose value is known for the Linux builds that the project deploys.  Any other macro in an
# #if is an optional build feature (ENABLE_*, USE_SSL_SOCKET, ...): its flags are kept and marked.
LINUX_MACROS = {"__linux__": True, "__WINDOWS__": False, "__APPLE__": False, "__FreeBSD__": False}

# The Flags classes that master::Flags / slave::Flags may inherit from, and where their flags live.
MESOS_BASE_FILES = {
    "logging::Flags": "src/logging/flags.cpp",
    "flags::FlagsBase": "3rdparty/stout/include/stout/flags/flags.hpp",
}
MESOS_ROLE_DIR = {"master": "src/master", "agent": "src/slave"}

ADD_RE = re.compile(
    r"\badd\(\s*&(?:\w+::)*(?P<member>\w+)\s*,\s*\"(?P<name>[A-Za-z0-9_]+)\"\s*,"
    r"(?:\s*flags::DeprecatedName\(\s*\"(?P<old>[A-Za-z0-9_]+)\"\s*\)\s*,)?"
)
# A data member of a Flags class: ``Duration gc_delay;``, ``Option<std::vector<unsigned int>> x;``.
MEMBER_RE = re.compile(r"(?m)^[ \t]*(?P<type>[A-Za-z_][\w:]*(?:\s*<[^;(){}]*>)?)\s+(?P<member>\w+)\s*;")
# How stout parses a flag's C++ type (3rdparty/stout/include/stout/flags/parse.hpp), as the value classes the
# schema checks: ``Option<T>`` parses as T; anything not named here (JSON, protobuf messages, ACLs, ...) is "other".
MESOS_VALUE_TYPES = {
    "bool": "bool", "Duration": "duration", "Bytes": "bytes", "Path": "path",
    "std::string": "string", "string": "string",
    "int": "int", "int32_t": "int", "int64_t": "int", "long": "int",
    "unsigned int": "uint", "unsigned": "uint", "size_t": "uint", "uint16_t": "uint", "uint32_t": "uint",
    "uint64_t": "uint", "double": "double", "float": "double",
}
DIRECTIVE_RE = re.compile(r"^[ \t]*#[ \t]*(ifdef|ifndef|if|elif|else|endif)\b(.*)$", re.MULTILINE)


@dataclass
class Branch:
    """One arm of an #if/#elif/#else: its readable condition and whether a Linux build compiles it."""

    text: str
    active: bool  # unknown (optional-feature) macros count as defined: their flags are kept
    taken: bool  # this or an earlier arm of the same #if is certainly compiled, so #else is not


@dataclass
class MesosFlag:
    name: str
    source: str
    member: str = ""
    conditions: list[str] = field(default_factory=list)
    deprecated_of: str | None = None


def _macro_truth(kind: str, expr: str) -> tuple[str, bool | None]:
    """A condition's text and its value on Linux (None: an optional build feature, assumed on)."""
    expr = expr.strip()
    macro_match = re.search(r"[A-Za-z_]\w*", re.sub(r"\bdefined\b", "", expr))
    macro = macro_match.group(0) if macro_match else expr
    negate = kind == "ifndef" or expr.startswith("!")
    text = f"!{macro}" if negate else macro
    if macro.endswith("_HPP__"):  # include guard
        return text, True
    if macro in LINUX_MACROS:
        return text, LINUX_MACROS[macro] != negate
    return text, None


def _branches_at(text: str) -> Iterator[tuple[int, list[Branch]]]:
    """Yield (offset, stack of open branches) at each preprocessor directive, in order."""
    stack: list[Branch] = []
    for match in DIRECTIVE_RE.finditer(text):
        kind, expr = match.group(1), match.group(2)
        if kind in ("ifdef", "ifndef", "if"):
            cond, truth = _macro_truth(kind, expr)
            active = truth is not False
            stack.append(Branch(cond, active, taken=truth is True))
        elif kind == "elif":
            prev = stack.pop()
            cond, truth = _macro_truth("if", expr)
            active = not prev.taken and truth is not False
            stack.append(Branch(cond, active, taken=prev.taken or truth is True))
        elif kind == "else":
            prev = stack.pop()
            cond = prev.text[1:] if prev.text.startswith("!") else f"!{prev.text}"
            stack.append(Branch(f"{cond} (#else)", not prev.taken, taken=True))
        else:
            stack.pop()
        yield match.end(), list(stack)


def mesos_flags_in(text: str, source: str) -> list[MesosFlag]:
    """Every flag registered with add(&Class::member, "name", ...) that a Linux build compiles."""
    code = strip_comments(text)
    states = list(_branches_at(code))
    found: list[MesosFlag] = []
    for match in ADD_RE.finditer(code):
        stack: list[Branch] = []
        for offset, branches in states:
            if offset > match.start():
                break
            stack = branches
        if not all(b.active for b in stack):
            continue
        conditions = [b.text for b in stack if not b.text.endswith("_HPP__")]
        member, name, deprecated = match.group("member"), match.group("name"), match.group("old")
        found.append(MesosFlag(name.lower(), source, member, conditions))
        if deprecated:
            found.append(MesosFlag(deprecated.lower(), source, member, conditions, deprecated_of=name))
    return found


def mesos_member_types(header: str) -> dict[str, str]:
    """The value class (``MESOS_VALUE_TYPES``) of every data member a Flags header declares."""
    types: dict[str, str] = {}
    for match in MEMBER_RE.finditer(strip_comments(header)):
        cpp = re.sub(r"\s+", " ", match.group("type")).strip()
        inner = re.fullmatch(r"Option\s*<\s*(.+?)\s*>", cpp)
        types[match.group("member")] = MESOS_VALUE_TYPES.get(inner.group(1) if inner else cpp, "other")
    return types


def mesos_bases(header: str) -> list[str]:
    match = re.search(r"class\s+Flags\s*:\s*([^{]+)\{", strip_comments(header))
    if not match:
        raise SystemExit("could not find 'class Flags : ...' in the role's flags.hpp")
    return [re.sub(r"\b(public|protected|private|virtual)\b", "", b).strip() for b in match[1].split(",")]


def extract_mesos(tree: SourceTree, role: str) -> tuple[list[str], list[str]]:
    """Return (header lines, sorted ``name type`` lines) for mesos-master or mesos-agent."""
    role_dir = MESOS_ROLE_DIR[role]
    role_header = tree.read(f"{role_dir}/flags.hpp")
    bases = mesos_bases(role_header)
    member_types = mesos_member_types(role_header)
    for path in ("src/logging/flags.hpp", MESOS_BASE_FILES["flags::FlagsBase"]):
        member_types = {**mesos_member_types(tree.read(path)), **member_types}
    files = [f"{role_dir}/flags.hpp"]
    to_scan: list[str] = []
    for base in bases:
        if base not in MESOS_BASE_FILES:
            raise SystemExit(f"{role_dir}/flags.hpp: unexpected base class {base!r}; extend MESOS_BASE_FILES")
        to_scan.append(MESOS_BASE_FILES[base])
    if "flags::FlagsBase" not in bases:  # logging::Flags derives from it
        base_header = tree.read("src/logging/flags.hpp")
        if "flags::FlagsBase" not in mesos_bases(base_header):
            raise SystemExit("src/logging/flags.hpp: logging::Flags no longer derives from FlagsBase")
        files.append("src/logging/flags.hpp")
        to_scan.append(MESOS_BASE_FILES["flags::FlagsBase"])
    to_scan += [f"{role_dir}/flags.cpp", f"{role_dir}/main.cpp"]

    flags: dict[str, MesosFlag] = {}
    for path in to_scan:
        files.append(path)
        for flag in mesos_flags_in(tree.read(path), path):
            flags.setdefault(flag.name, flag)
    for must in ("help", "version", "ip", "port", "work_dir"):
        if must not in flags:
            raise SystemExit(f"flag {must!r} not found: the sources do not look as expected")
    untyped = sorted(f.name for f in flags.values() if f.member not in member_types)
    if untyped:
        raise SystemExit(f"no member declaration found for the flags {', '.join(untyped)}")

    binary = "mesos-master" if role == "master" else "mesos-agent (also installed as mesos-slave)"
    header = [
        f"Command-line flags of {binary}: --NAME=VALUE, --NAME=file:///path, or env MESOS_<NAME>.",
        "Boolean flags are also accepted as --no-NAME (not listed separately).",
        *provenance(tree, "apache/mesos"),
        "Files read: " + ", ".join(files),
        'Extracted by tools/extract_names.py: every add(&Flags::member, "name", ...) call in the',
        "files above (the Flags class of the role, its base classes, and main.cpp), including the",
        'flags::DeprecatedName("old") alias names that stout still accepts; branches that a Linux build',
        "does not compile (__WINDOWS__) are skipped.",
        "Each name is followed by the class of value stout parses for its member's C++ type (the Flags",
        "headers above; Option<T> as T): bool, duration (stout duration.hpp: a number and one of ns, us,",
        "ms, secs, mins, hrs, days, weeks), bytes (stout bytes.hpp: a whole number and B, KB, MB, GB, TB),",
        "int, uint, double, path, string, or other (JSON, protobuf messages and lists: not checked).",
    ]
    conditional = sorted((f for f in flags.values() if f.conditions), key=lambda f: f.name)
    if conditional:
        header.append("Conditionally compiled (all kept: a Linux build with every optional feature enabled;")
        header.append("ENABLE_*/USE_SSL_SOCKET are configure options, __linux__ is Linux-only):")
        header += [f"  {f.name}: {' && '.join(f.conditions)}" for f in conditional]
    deprecated = sorted((f for f in flags.values() if f.deprecated_of), key=lambda f: f.name)
    if deprecated:
        header.append("Deprecated alias names (still accepted, listed as well):")
        header += [f"  {f.name} -> {f.deprecated_of}" for f in deprecated]
    return header, [f"{name} {member_types[flags[name].member]}" for name in sorted(flags)]
