"""The local cloud's Auto Scaling service: OTC's AS API over HTTP, owning the emulated agents' group.

Run as ``python3 -m provision_min.local.as_service --state-dir D --bind IP --port 8180`` (``provision-min
up`` starts it on the bridge's host address, detached; ``down`` stops it first, so nothing relaunches what
``down`` removes). ``D`` is the cluster's folder: ``cloud.json`` (the operator's AK/SK, the subnet),
``as.json`` (this service's own state, see ``as_state``) and ``metadata/`` (the metadata service's answers:
this service writes the agents' and hands out every instance's temporary keys there).

Every request must be signed (``SDK-HMAC-SHA256``, ``bootstrap_agent.otc_signing``) with the operator's key
or an instance's current temporary key and its ``X-Security-Token``; anything else is refused with 401 and
the reason. Paths: ``/autoscaling-api/v1/local/...`` (``as_api``). A worker ticks every ``--tick`` seconds:
it launches instances up to the desired count, marks them ``INSERVICE`` once their machine runs, takes
victims out when the desired count drops (by the group's ``instance_terminate_policy``), lets the
terminating hook hold them (``REMOVING_WAIT``) until a callback or its ``default_timeout``, powers them off
(``REMOVING``) and forgets them. One JSON line per request and per state change goes to stderr.

``--machines none`` runs the same service without containers (instances are "running" at once): the unit
tests' mode. SIGTERM → exit 0.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from bootstrap_agent.otc_signing import KnownKey, SigningKey, verify_request
from provision_min.files import write_private
from provision_min.local import machine, metadata_host, network
from provision_min.local.as_api import Api, Fault, Request
from provision_min.local.as_state import INSERVICE, PENDING, REMOVING, STATE_NAME, AsInstance, AsState, victims
from provision_min.local.layout import AS_PORT, AS_PREFIX, CloudState, Names, Paths

PREFIX, PORT = AS_PREFIX, AS_PORT
MAX_BODY = 1 << 20


def log(stream: IO[str], **fields: Any) -> None:
    fields.setdefault("ts", round(time.time(), 3))
    stream.write(json.dumps(fields, sort_keys=True) + "\n")
    stream.flush()


# -- the machines ----------------------------------------------------------------------------------------
class Machines(Protocol):
    def launch(self, instance: AsInstance, image: str) -> None: ...
    def running(self, instance: AsInstance) -> bool: ...
    def stop(self, instance: AsInstance) -> None: ...


class NoMachines:
    """Instances without containers: running from the start (the unit tests' mode)."""

    def launch(self, instance: AsInstance, image: str) -> None:
        """Nothing to boot."""

    def running(self, instance: AsInstance) -> bool:
        return True

    def stop(self, instance: AsInstance) -> None:
        """Nothing to power off."""


@dataclass
class NspawnMachines:
    """Instances as systemd-nspawn containers under their supervisors (``machine``)."""

    paths: Paths
    cloud: CloudState
    started: list[int] = field(default_factory=list)

    def spec(self, instance: AsInstance, image: str) -> machine.MachineSpec:
        return machine.MachineSpec(name=instance.name, image=image, uuid=instance.id,
                                   bridge=Names(self.cloud.cluster).bridge,
                                   node_dir=str(self.paths.node_dir(instance.name)))

    def launch(self, instance: AsInstance, image: str) -> None:
        spec = self.spec(instance, image)
        if machine.supervisor_pid(spec.folder) is not None:
            return
        spec.folder.mkdir(parents=True, exist_ok=True)
        spec.network_file.write_text(network.networkd_text(self.cloud, instance.ip))
        self.started.append(machine.start(spec))

    def running(self, instance: AsInstance) -> bool:
        self._reap()
        return machine.systemd_pid(self.paths.node_dir(instance.name)) is not None

    def stop(self, instance: AsInstance) -> None:
        machine.stop(instance.name, self.paths.node_dir(instance.name))
        self._reap()

    def _reap(self) -> None:
        """Supervisors are this process's children: collect the ones that ended (no zombies)."""
        for pid in list(self.started):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.started.remove(pid)


# -- the service -----------------------------------------------------------------------------------------
class Service:
    def __init__(self, paths: Paths, machines: Machines, *, key_ttl: float = metadata_host.KEY_TTL,
                 min_hook_timeout: int = 300, events: IO[str] = sys.stderr) -> None:
        self.paths, self.machines, self.key_ttl, self.events = paths, machines, key_ttl, events
        self.state_file = paths.root / STATE_NAME
        self.state = AsState.load(self.state_file)
        self.api = Api(self.state, health=self.health, min_hook_timeout=min_hook_timeout)
        self.lock = threading.Lock()
        self.stopping: set[str] = set()
        self.saved = self.state.to_json() if self.state_file.exists() else b""
        self.resumed = False  #: the first tick launches again what a crash left PENDING (launch is idempotent)

    def cloud(self) -> CloudState:
        loaded = self.paths.load()
        if loaded is None:
            raise RuntimeError(f"{self.paths.state_file} is gone")
        return loaded

    # authentication
    def lookup(self, access: str) -> KnownKey | None:
        cloud = self.cloud()
        if cloud.as_access_key and access == cloud.as_access_key:
            return KnownKey(SigningKey(cloud.as_access_key, cloud.as_secret_key))
        return metadata_host.node_keys(self.paths).get(access)

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, str]:
        """(status, JSON body, one-line note for the log)."""
        refused = verify_request(method, target, headers, body, self.lookup)
        if refused is not None:
            return 401, {"error_code": "APIGW.0301", "error_msg": f"Incorrect IAM authentication information: "
                                                                  f"{refused}"}, refused
        parts = urlsplit(target)
        if not parts.path.startswith(PREFIX + "/"):
            return 404, Fault(404, "AS.0404", f"no such API path: {parts.path}").body(), "unknown prefix"
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return 400, Fault(400, "AS.0001", "the request body is not JSON").body(), "bad json"
        request = Request(method, parts.path[len(PREFIX):], dict(parse_qsl(parts.query)), payload, time.time())
        with self.lock:
            before = {i.id: i.state for i in self.state.instances}
            try:
                status, answer = self.api.answer(request)
            except Fault as fault:
                return fault.status, fault.body(), fault.message
            if self.api.changed:
                self.save()
                self._log_changes(before)
        return status, answer, ""

    def health(self, instance: AsInstance) -> str:
        if self.machines.running(instance):
            return "NORMAL"
        return "INITIALIZING" if instance.state == PENDING else "ERROR"

    def save(self) -> None:
        """Atomically, and only when something changed (the worker ticks twice a second)."""
        data = self.state.to_json()
        if data != self.saved:
            write_private(self.state_file, data)
            self.saved = data

    # the worker
    def tick(self) -> None:
        """One pass of the group's own work; see the module's docstring."""
        now = time.time()
        renewed = metadata_host.renew_keys(self.paths, self.key_ttl, now)
        if renewed:
            log(self.events, event="keys_renewed", instances=renewed)
        with self.lock:
            before = {i.id: i.state for i in self.state.instances}
            self._settle(now)
            removing = [i for i in self.state.instances if i.state == REMOVING and i.id not in self.stopping]
            self.stopping.update(i.id for i in removing)
            self._log_changes(before)
            self.save()
        for instance in removing:
            threading.Thread(target=self._remove, args=(instance,), daemon=True).start()

    def _settle(self, now: float) -> None:
        state, group = self.state, self.state.group
        for action in state.expired(now):
            state.complete(action, action.default_result, now)
            log(self.events, event="lifecycle_timeout", instance=action.instance_id, result=action.default_result)
        if not self.resumed:
            self.resumed = True
            for instance in state.instances:
                if instance.state == PENDING and not self.machines.running(instance):
                    self._launch(self.cloud(), instance)
        for instance in state.instances:
            if instance.state == PENDING and self.machines.running(instance):
                instance.state = INSERVICE
        if group is None or group.status != "INSERVICE":
            return
        active = state.active()
        if len(active) > group.desired:
            for victim in victims(active, len(active) - group.desired, group.terminate_policy, group.config_id):
                state.begin_removal(victim, now)
        cloud = None
        while len(state.active()) < group.desired:
            cloud = cloud or self.cloud()
            index = state.next_index()
            name = Names(cloud.cluster).machine("agent", index)
            instance = state.add_instance(name, index, cloud.agent_ip(index), now)
            self.save()  # named before it exists: down finds it whatever happens next
            self._launch(cloud, instance)

    def _launch(self, cloud: CloudState, instance: AsInstance) -> None:
        config = self.state.configurations[instance.config_id]["instance_config"]
        meta = {"uuid": instance.id, "name": instance.name, "hostname": f"{instance.name}.novalocal",
                "availability_zone": (self.state.group.zones or ["local"])[0] if self.state.group else "local",
                "project_id": "local", "launch_index": 0,
                "meta": {"cluster": cloud.cluster, "role": "agent", **(config.get("metadata") or {})}}
        metadata_host.publish_answers(self.paths, instance.ip, base64.b64decode(config.get("user_data", "")), meta,
                                      self.key_ttl)
        self.machines.launch(instance, str(config["imageRef"]))
        log(self.events, event="instance_launched", instance=instance.id, name=instance.name, ip=instance.ip)

    def _remove(self, instance: AsInstance) -> None:
        try:
            self.machines.stop(instance)
        except Exception as exc:  # logged, retried by the next tick
            log(self.events, event="instance_stop_failed", instance=instance.id, error=" ".join(str(exc).split()))
            with self.lock:
                self.stopping.discard(instance.id)
            return
        machine.remove_folder(self.paths.metadata_dir / instance.ip)
        with self.lock:
            if instance in self.state.instances:
                self.state.forget(instance)
            self.stopping.discard(instance.id)
            self.save()
        log(self.events, event="instance_state", instance=instance.id, name=instance.name, old=REMOVING, new="gone")

    def _log_changes(self, before: dict[str, str]) -> None:
        for instance in self.state.instances:
            old = before.get(instance.id)
            if old != instance.state:
                log(self.events, event="instance_state", instance=instance.id, name=instance.name, old=old,
                    new=instance.state)


class _Handler(BaseHTTPRequestHandler):
    server_version = "ba-autoscaling/1"
    service: Service

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        try:
            status, answer, note = self.service.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug must not kill the service: a 500 and a log line
            status, answer, note = 500, Fault(500, "AS.0500", "internal error").body(), " ".join(str(exc).split())
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        access = (headers.get("Authorization") or headers.get("authorization") or "").partition("Access=")[2]
        log(sys.stderr, event="request", client=self.client_address[0], method=self.command,
            path=urlsplit(self.path).path, status=status, access=access.split(",")[0] or None, reason=note or None)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log: requests are logged as JSON in ``_serve``."""


def serve(service: Service, bind: str, port: int, tick: float, ready: Callable[[int], None]) -> None:
    handler = type("Handler", (_Handler,), {"service": service})
    httpd = ThreadingHTTPServer((bind, port), handler)
    httpd.daemon_threads = True
    done = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        done.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def work() -> None:
        while not done.wait(tick):
            try:
                service.tick()
            except Exception as exc:  # the next tick tries again
                log(sys.stderr, event="tick_failed", error=" ".join(str(exc).split())[:300])

    threading.Thread(target=work, daemon=True).start()
    ready(httpd.server_address[1])
    try:
        httpd.serve_forever(poll_interval=0.1)
    finally:
        httpd.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True, type=Path)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=PORT)
    parser.add_argument("--machines", choices=("nspawn", "none"), default="nspawn")
    parser.add_argument("--tick", type=float, default=0.5, help="seconds between the group's passes")
    parser.add_argument("--key-ttl", type=float, default=metadata_host.KEY_TTL,
                        help="seconds an instance's temporary keys are valid")
    parser.add_argument("--min-hook-timeout", type=int, default=300,
                        help="the smallest default_timeout a hook may have (OTC: 300)")
    args = parser.parse_args(argv)
    paths = Paths(args.state_dir.resolve())
    cloud = paths.load()
    if cloud is None:
        print(f"as_service: {paths.state_file}: no local cloud state", file=sys.stderr)
        return 2
    machines: Machines = NoMachines() if args.machines == "none" else NspawnMachines(paths, cloud)
    service = Service(paths, machines, key_ttl=args.key_ttl, min_hook_timeout=args.min_hook_timeout)
    serve(service, args.bind, args.port, args.tick,
          lambda port: log(sys.stderr, event="listening", bind=args.bind, port=port, state=str(paths.root)))
    log(sys.stderr, event="stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
