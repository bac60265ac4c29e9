"""Reading an upstream source tree (work tree or ``git show REV:PATH``) and scanning its code: comments
stripped, Java strings, balanced call arguments. Shared by the Mesos and Alluxio extractors."""

from __future__ import annotations

import re
import subprocess
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


def provenance(tree: SourceTree, upstream: str) -> list[str]:
    commit = tree.commit()
    rev = tree.rev or "(work tree)"
    return [f"Upstream: https://github.com/{upstream}  revision: {rev}  commit: {commit or 'unknown'}"]
