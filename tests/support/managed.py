"""One process a test support server runs: started with a readiness wait, stopped SIGTERM-then-SIGKILL.

ZooKeeper, the metadata service, nginx and the daemons under test are each one foreground process, in a
``TestNode`` or on the host. What they share lives here: the process's output appended to a log file in a
work dir (created when not given, removed by ``close()``), ``start()`` waiting for the subclass's
``ready()`` and failing at once with the log's tail when the process exits first, a start that fails
stopping what it started, and ``stop()`` giving the program ``stop_timeout`` seconds to exit on SIGTERM
before SIGKILL. ``stop()`` keeps ``proc``, so a test can still read the exit code.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Self

from .waiting import NotReached, wait_for

if TYPE_CHECKING:
    from .netns import TestNode


class ExitedEarly(RuntimeError):
    """The process died before it was ready (a bad config, or a port someone else took meanwhile)."""


def terminate(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM, ``timeout`` seconds to exit, then SIGKILL; the exit code."""
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
        except ProcessLookupError:
            pass  # gone between poll() and the signal
    return proc.wait(10)


class ManagedProcess:
    """Subclasses give ``argv()`` and ``ready()``, and may hook ``prepare()`` (before each launch) and
    ``after_stop()``; the log is ``log_name`` in the work dir."""

    start_timeout = 10.0
    stop_timeout = 5.0
    poll_interval = 0.05

    def __init__(self, node: TestNode | None, workdir: str | Path | None, *, prefix: str, log_name: str) -> None:
        self.node = node
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=prefix))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / log_name
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    # -- what a subclass says ---------------------------------------------------------------------------------
    def argv(self) -> Sequence[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the program serves (called every ``poll_interval`` during ``start()``)."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Before each launch: write the config, remember where the log ends, ..."""

    def after_stop(self) -> None:
        """After the process is gone: wait for what it leaves behind."""

    # -- lifecycle --------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process without waiting for it (``start()`` waits; a daemon under test may not)."""
        self.prepare()
        with open(self.log_path, "ab") as log:
            self.proc = self._popen(self.argv(), log)
        return self.proc

    def start(self, timeout: float | None = None) -> Self:
        """Launch and wait until ``ready()`` (``start_timeout`` by default); ``ExitedEarly`` or ``NotReached``
        (a ``TimeoutError``), with the log's tail, after stopping whatever was started."""
        if self.running:
            return self
        timeout = self.start_timeout if timeout is None else timeout
        proc = self.launch()

        def probe() -> bool:
            if proc.poll() is not None:
                raise ExitedEarly(f"{self} exited with {proc.returncode}:\n{self.log_tail()}")
            return self.ready()

        try:
            wait_for(f"{self} ready", probe, timeout, self.poll_interval)
        except NotReached as exc:
            self.stop()
            raise NotReached(f"{exc}\n{self.log_tail()}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, ``timeout`` (default ``stop_timeout``) seconds to exit, then SIGKILL; the exit code, None
        when it never started."""
        if self.proc is None:
            return None
        code = terminate(self.proc, self.stop_timeout if timeout is None else timeout)
        self.after_stop()
        return code

    def restart(self, timeout: float | None = None) -> Self:
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop, and remove the work dir when this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- output -----------------------------------------------------------------------------------------------
    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]

    def _popen(self, argv: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        if self.node is not None:
            proc: subprocess.Popen[bytes] = self.node.popen(argv, stdout=log, stderr=log)
            return proc
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
