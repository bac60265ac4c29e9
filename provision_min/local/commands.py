"""The cluster on this machine: the commands of ``provision_min.clouds.Cloud`` for the local cloud."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from provision_min.clouds import EXIT_CHANGES, EXIT_FAILED, EXIT_OK, Access
from provision_min.config import ClusterConfig
from provision_min.confirm import Confirmation
from provision_min.local import cloud
from provision_min.local.readiness import DEFAULT_READY_TIMEOUT


@dataclass
class LocalCloud:
    config: ClusterConfig
    wait_timeout: float | None = None
    subnet: str | None = None
    packages: tuple[str, str] | None = None  # a Mesos .deb and an Alluxio tarball instead of the stand-ins

    @property
    def timeout(self) -> float:
        return self.wait_timeout or DEFAULT_READY_TIMEOUT

    def plan(self, as_json: bool = False, detailed_exitcode: bool = False) -> int:
        """What up would start and replace (``plan_local``); nothing changes."""
        from provision_min.local.plan_local import plan

        _, state = cloud.load_state(self.config)
        planned = plan(self.config, state)
        print(json.dumps(planned.as_json()) if as_json else "\n".join(planned.lines()))
        return EXIT_CHANGES if detailed_exitcode and planned.changes else EXIT_OK

    def up(self, as_json: bool = False) -> int:
        config = self.config
        result = cloud.up(config, subnet=self.subnet, out=sys.stderr, ready_timeout=self.timeout,
                          packages=self.packages)
        state = result.state
        if as_json:
            print(json.dumps({"cluster": config.cluster, "cloud": "local", "seconds": round(result.seconds, 1),
                              "started": result.created, "masters": {n.name: n.ip for n in state.masters()},
                              "agents": {n.name: n.ip for n in state.agents()}, "as_group": f"{config.cluster}-agents",
                              "dashboard": cloud.dashboard_url(state),
                              "login": cloud.login(config, state, result.paths).as_json()}))
            return EXIT_OK
        print(f"cluster {config.cluster} (local): ready in {result.seconds:.1f} s"
              + (f" ({result.created} instance(s) started)" if result.created else ", nothing to start"))
        print("masters: " + ", ".join(f"{n.name} {n.ip}" for n in state.masters()))
        print(f"agents: AS group {config.cluster}-agents, {len(state.agents())} instance(s) (min {config.agents.min}, "
              f"max {config.agents.max})")
        print(f"dashboard: {cloud.dashboard_url(state)}")
        print(f"dashboard login: {cloud.login(config, state, result.paths).hint()}")
        return EXIT_OK

    def status(self, as_json: bool) -> int:
        report = cloud.status(self.config)
        print(json.dumps(report, indent=2) if as_json else cloud.render_status(report))
        return EXIT_OK if report["complete"] else EXIT_FAILED

    def scale(self, count: int, as_json: bool = False, wait: bool = True) -> int:
        before, after, seconds = cloud.scale(self.config, count, out=sys.stderr, ready_timeout=self.timeout,
                                             wait=wait)
        if as_json:
            print(json.dumps({"cluster": self.config.cluster, "cloud": "local", "before": before, "after": after,
                              "group": f"{self.config.cluster}-agents", "seconds": round(seconds, 1)}))
            return EXIT_OK
        print(f"AS group {self.config.cluster}-agents (local): desired {before} -> {after}, settled in {seconds:.1f} s")
        return EXIT_OK

    def shell(self, node: str, command: Sequence[str], access: Access, *, root: bool = False) -> int:
        """Into the container's namespaces, as root (``root`` changes nothing here)."""
        from provision_min.local.access import run_in

        return run_in(self.config, node, command)

    def down(self, confirm: Confirmation, as_json: bool = False) -> int:
        gone = cloud.down(self.config, lambda items: confirm.ask(self.config.cluster, items))
        if as_json:
            print(json.dumps({"cluster": self.config.cluster, "cloud": "local", "removed": gone.removed,
                              "seconds": round(gone.seconds, 1)}))
            return EXIT_OK
        if gone.removed:
            print(f"cluster {self.config.cluster} (local): removed in {gone.seconds:.1f} s: " + ", ".join(gone.removed))
        else:
            print(f"cluster {self.config.cluster} (local): nothing to remove")
        return EXIT_OK
