"""The supervisor of one local-cloud instance: ``python3 -m provision_min.local.supervise <node>/spec.json``.

It is what a hypervisor is to a cloud server: it mounts the instance's disk, boots systemd-nspawn in the
instance's own cgroups, boots it again when the instance rebooted itself (exit status 133), and on SIGTERM
powers it off cleanly (SIGTERM to systemd-nspawn; SIGKILL after the spec's ``stop_timeout``). When the
instance is off for good it removes the cgroups and unmounts the disk (the disk's content stays in the node
folder until the instance is deleted). Its state goes to ``<node>/supervisor.json`` (atomically), its
output and the container's console to ``<node>/console.log``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from provision_min.local import machine
from provision_min.local.machine import EXIT_REBOOT, MachineSpec


class Supervisor:
    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.boots = 0

    def write_status(self, state: str, **extra: Any) -> None:
        record = {"pid": os.getpid(), "state": state, "boots": self.boots, "updated": time.time(),
                  "nspawn_pid": self.proc.pid if self.proc is not None and state != "stopped" else None, **extra}
        tmp = self.spec.status_file.with_name(".supervisor.json.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, self.spec.status_file)

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True  # wait() passes it on within half a second

    def boot(self) -> subprocess.Popen[bytes]:
        for cg in self.spec.cgroups:
            cg.mkdir(exist_ok=True)
        # The shell moves itself into the instance's cgroups, then becomes systemd-nspawn.
        script = "".join(f'echo $$ > "{cg}/cgroup.procs" && ' for cg in self.spec.cgroups) + 'exec "$@"'
        self.boots += 1
        print(f"--- provision-min: boot {self.boots} of {self.spec.name}", flush=True)
        return subprocess.Popen(["sh", "-c", script, "sh", *self.spec.nspawn_argv()], stdin=subprocess.DEVNULL,
                                env={"PATH": machine.CONTAINER_PATH, "LC_ALL": "C.UTF-8",
                                     **machine.nspawn_environment(self.spec.cgroup_layout)})

    def wait(self, proc: subprocess.Popen[bytes]) -> int:
        """systemd-nspawn's exit status; a stop request becomes SIGTERM (a clean poweroff), then SIGKILL."""
        asked_at: float | None = None
        while True:
            try:
                return proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            if self.stopping and asked_at is None:
                asked_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
            elif asked_at is not None and time.monotonic() - asked_at > self.spec.stop_timeout:
                proc.kill()

    def run(self) -> int:
        machine.mount_disk(self.spec)
        code = 0
        try:
            while not self.stopping:
                self.proc = self.boot()
                self.write_status("running")
                code = self.wait(self.proc)
                for cg in reversed(self.spec.cgroups):
                    machine.remove_cgroup(cg)
                if code != EXIT_REBOOT or self.stopping:
                    break
                self.write_status("rebooting")
        finally:
            for cg in reversed(self.spec.cgroups):
                machine.remove_cgroup(cg)
            machine.unmount_disk(self.spec.merged)
            self.write_status("stopped", exit_code=code, requested=self.stopping)
        print(f"--- provision-min: {self.spec.name} is off (systemd-nspawn exit {code})", flush=True)
        return 0 if self.stopping or code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python3 -m provision_min.local.supervise NODE_DIR/spec.json", file=sys.stderr)
        return 2
    supervisor = Supervisor(MachineSpec.load(Path(args[0])))
    signal.signal(signal.SIGTERM, supervisor.on_signal)
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
