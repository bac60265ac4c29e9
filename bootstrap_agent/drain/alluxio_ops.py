"""The drain's Alluxio edge: the worker's cached bytes (its web API, every pass) and, while draining, the files
whose blocks only this worker holds and that are not yet in the under-store (the ``alluxio`` CLI, per version).

What the versions can do (read at the tags Alluxio v2.9.3 and v1.8.2; /tmp note of the stand-in's author and
``shell/.../fs/command`` of upstream):

* ``fs ls -R /`` lists every file with its persistence state and how much of it is in Alluxio; ``fs location``
  names the workers that hold its blocks. A file NOT_PERSISTED or TO_BE_PERSISTED, with blocks here, would be
  lost with this worker.
* ``fs persist`` writes such files to the under-store. 2.9 runs it through the job service and waits up to
  ``-t`` milliseconds (it exits 0 even on a timeout: the next listing is the truth); 1.8 has the worker that
  holds all the blocks persist it, one file at a time, and no timeout option.
* ``fsadmin decommissionWorker`` (the worker takes no new blocks) exists from 2.9.4 on; 2.9.3 and 1.8 answer
  "decommissionWorker is an unknown command." The drain then goes on without it and lists again after every
  persist, until nothing is left here (new blocks only come from clients still writing; the tasks phase has
  ended this agent's own).

The CLI starts a JVM per call, and a listing calls it once per candidate file: listings and persists run in the
background, so a pass never waits for them (the loop must keep pinging systemd's watchdog); a pass uses the
newest listing that began after what it must reflect (the last persist's end).
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests

ALLUXIO_CLI = "/opt/alluxio/bin/alluxio"
WORKER_WEB_PORT = 30000  # 1.8 and 2.9 (bootstrap_agent/ports.py ALLUXIO_WORKER_PORTS)
UNPERSISTED = ("NOT_PERSISTED", "TO_BE_PERSISTED")
MAX_LOCATED = 200  # more candidate files than this: "unknown" rather than minutes of CLI calls


class AlluxioUnavailable(Exception):
    """The CLI or the worker did not answer as documented; one line."""


@dataclass(frozen=True)
class HeldHere:
    """Files at risk: blocks only on this worker (or on this one among others, still unpersisted)."""

    paths: tuple[str, ...]
    bytes: int


class AlluxioOps:
    def __init__(self, cli: Sequence[str], version: str, worker_ip: str, *, web_port: int = WORKER_WEB_PORT,
                 timeout: float = 60.0, session: requests.Session | None = None) -> None:
        self.cli = tuple(cli)
        self.version = version
        self.worker_ip = worker_ip
        self.web = f"http://{worker_ip}:{web_port}"
        self.timeout = timeout
        self.http = session or requests.Session()
        self.decommission_unsupported = False
        self._persist: subprocess.Popen[bytes] | None = None
        self._persist_output: Any = None  # the running persist's stdout and stderr (a temporary file)
        self.persist_result: tuple[int, str] | None = None  # the last persist's exit code and last line
        self._persist_deadline = 0.0
        self.persist_ended = float("-inf")  # monotonic: a listing must begin after this to count
        self._lock = threading.Lock()
        self._listing: threading.Thread | None = None
        self._listed: tuple[float, HeldHere | AlluxioUnavailable] | None = None  # (began, result)

    # --- every pass --------------------------------------------------------------------------------------------
    def cache_bytes(self) -> int:
        """Bytes of blocks in the worker's storage (``/api/v1/worker/info`` ``capacity.used``)."""
        try:
            answer = self.http.get(self.web + "/api/v1/worker/info", timeout=min(self.timeout, 3.0))
            answer.raise_for_status()
            used = answer.json()["capacity"]["used"]
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            raise AlluxioUnavailable(f"worker info: {type(exc).__name__}") from None
        if type(used) is not int or used < 0:
            raise AlluxioUnavailable("worker info: capacity.used is not a byte count")
        return used

    # --- the blocks phase ---------------------------------------------------------------------------------------
    def held_since(self, since: float) -> HeldHere | None:
        """The newest listing that began at or after ``since`` (monotonic), or None while it is being made (one is
        started in the background then); ``AlluxioUnavailable`` when that listing failed."""
        with self._lock:
            listed = self._listed
            if listed is not None and listed[0] >= since:
                if isinstance(listed[1], AlluxioUnavailable):
                    raise listed[1]
                return listed[1]
            if self._listing is None or not self._listing.is_alive():
                self._listing = threading.Thread(target=self._list, name="alluxio-listing", daemon=True)
                self._listing.start()
        return None

    def _list(self) -> None:
        began = time.monotonic()
        try:
            result: HeldHere | AlluxioUnavailable = self.held_here()
        except AlluxioUnavailable as exc:
            result = exc
        with self._lock:
            self._listed = (began, result)

    def held_here(self) -> HeldHere:
        """Unpersisted files with blocks on this worker, from ``fs ls -R /`` and ``fs location``."""
        candidates: list[tuple[str, int]] = []
        for line in self._run("fs", "ls", "-R", "/").splitlines():
            fields = line.split()
            if len(fields) < 8 or fields[-2] == "DIR":
                continue
            state, in_alluxio, path = fields[-5], fields[-2], fields[-1]
            if state in UNPERSISTED and in_alluxio != "0%":
                with contextlib.suppress(ValueError):
                    candidates.append((path, int(fields[-6])))
        if len(candidates) > MAX_LOCATED:
            raise AlluxioUnavailable(f"{len(candidates)} unpersisted files: too many to locate each pass")
        here = [(path, size) for path, size in candidates if self.worker_ip in self._hosts(path)]
        return HeldHere(tuple(p for p, _ in here), sum(size for _, size in here))

    def _hosts(self, path: str) -> set[str]:
        lines = self._run("fs", "location", path).splitlines()
        return {line.strip() for line in lines[1:] if line.strip()}

    def decommission(self) -> bool:
        """The worker takes no new blocks (2.9.4+); True also where the version cannot (said once, in the log)."""
        if self.decommission_unsupported:
            return True
        try:
            self._run("fsadmin", "decommissionWorker", "--addresses", self.worker_ip)
        except AlluxioUnavailable as exc:
            if "unknown command" not in str(exc):
                raise
            self.decommission_unsupported = True
        return True

    def persist(self, paths: Sequence[str], seconds_left: float, log: Any) -> bool:
        """Start persisting ``paths`` in the background unless a persist still runs or ``paths`` may be stale (no
        listing has begun since the last persist ended); True when one started."""
        if self.persisting() or not paths:
            return False
        with self._lock:
            if self._listed is None or self._listed[0] < self.persist_ended:
                return False
        budget = max(int(seconds_left * 1000), 1000)
        options = ("-t", str(budget)) if self.version != "1.8" else ()
        command = (*self.cli, "fs", "persist", *options, *paths)
        self._persist_output = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the persist has ended
        self._persist = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._persist_output,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self._persist_deadline = time.monotonic() + max(seconds_left, 1.0) + 30.0
        log.info("drain_persist_started", files=len(paths), pid=self._persist.pid)
        return True

    def persisting(self) -> bool:
        """Whether a persist still runs; one past its own budget (1.8 has none) is ended."""
        job = self._persist
        if job is None:
            return False
        if job.poll() is None:
            if time.monotonic() < self._persist_deadline:
                return True
            job.kill()
            job.wait(5)
        self._persist = None
        self.persist_ended = time.monotonic()
        output = self._persist_output
        lines: list[str] = []
        if output is not None:
            output.seek(0)
            lines = output.read()[-4000:].decode("utf-8", "replace").strip().splitlines()
            output.close()
        self.persist_result = (job.returncode, lines[-1][:200] if lines else "")
        return False

    def stop(self) -> None:
        """End a persist still running (the agent is leaving without waiting)."""
        if self._persist is not None and self._persist.poll() is None:
            self._persist.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._persist.wait(5)
        self._persist = None

    def _run(self, *args: str) -> str:
        try:
            done = subprocess.run((*self.cli, *args), stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AlluxioUnavailable(f"alluxio {' '.join(args[:2])}: {type(exc).__name__}") from None
        if done.returncode != 0:
            text = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
            raise AlluxioUnavailable(f"alluxio {' '.join(args[:2])}: exit {done.returncode}: "
                                     f"{text[0][:200] if text else ''}")
        return done.stdout.decode("utf-8", "replace")
