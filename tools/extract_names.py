"""Extract the valid Mesos flag names and Alluxio property keys from an upstream source tree.

This is the tool that produced ``bootstrap_agent/data/names/*.txt``.  It is not run in CI: it needs a
checkout (or a bare git directory) of apache/mesos or Alluxio/alluxio, which the project does not ship.

    python tools/extract_names.py mesos   REPO_DIR master|agent [--rev TAG]
    python tools/extract_names.py alluxio REPO_DIR [--rev TAG]

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
import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------------------------------
# Reading sources and stripping comments


class SourceTree:
    """Reads files either from a work tree or, with ``rev``, from a git revision."""

    def __init__(self, repo: Path, rev: str | None) -> None:
        self.repo = repo
        self.rev = rev

    def read(self, path: str) -> str:
        if self.rev is None:
            return (self.repo / path).read_text(encoding="utf-8")
        return self._git("show", f"{self.rev}:{path}")

    def exists(self, path: str) -> bool:
        if self.rev is None:
            return (self.repo / path).is_file()
        try:
            self._git("cat-file", "-e", f"{self.rev}:{path}")
        except subprocess.CalledProcessError:
            return False
        return True

    def commit(self) -> str | None:
        if self.rev is None:
            try:
                return self._git("rev-parse", "HEAD").strip()
            except (subprocess.CalledProcessError, FileNotFoundError):
                return None
        return self._git("rev-parse", f"{self.rev}^{{commit}}").strip()

    def _git(self, *args: str) -> str:
        git_dir = self.repo / ".git" if (self.repo / ".git").exists() else self.repo
        result = subprocess.run(
            ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True, text=True
        )
        return result.stdout


def strip_comments(text: str) -> str:
    """Blank out // and /* */ comments of C++ or Java source, leaving string literals intact.

    Newlines are kept so that preprocessor lines stay on lines of their own.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        two = text[i : i + 2]
        if two == "//":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif two == "/*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append("\n" * text.count("\n", i, end) or " ")
            i = end
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def java_string(literal: str) -> str:
    """The value of a simple Java/C++ string literal (quotes included in ``literal``)."""
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def balanced_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """Split the argument list starting at ``text[open_paren] == '('`` at its top-level commas.

    Returns the stripped arguments and the index just after the closing parenthesis.
    """
    assert text[open_paren] == "("
    depth, i, start = 0, open_paren, open_paren + 1
    args: list[str] = []
    while i < len(text):
        c = text[i]
        if c == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                last = text[start:i].strip()
                if last:
                    args.append(last)
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    raise ValueError("unbalanced parentheses")


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
        *_provenance(tree, "apache/mesos"),
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
        *_provenance(tree, "Alluxio/alluxio"),
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


# --------------------------------------------------------------------------------------------------


def _provenance(tree: SourceTree, upstream: str) -> list[str]:
    commit = tree.commit()
    rev = tree.rev or "(work tree)"
    return [f"Upstream: https://github.com/{upstream}  revision: {rev}  commit: {commit or 'unknown'}"]


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
