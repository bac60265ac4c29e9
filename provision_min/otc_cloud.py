"""The cluster on Open Telekom Cloud: the commands of ``provision_min.clouds.Cloud`` through the OTC API."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provision_min.clouds import EXIT_FAILED, EXIT_OK
from provision_min.config import ClusterConfig
from provision_min.otc import OtcClient
from provision_min.wait import Poller


@dataclass
class OtcCloud:
    config: ClusterConfig
    env: Mapping[str, str]
    cloud_name: str | None  # the clouds.yaml entry (None: $OS_CLOUD or the OS_* variables)
    poller: Poller
    state_path: Path
    create_bucket: bool = False
    offline: bool = False  # plan only: assume an empty project, ask no API

    def client(self) -> OtcClient:
        from provision_min.credentials import load_auth

        auth = load_auth(self.cloud_name, dict(self.env), region=self.config.region)
        return OtcClient.connect(auth, self.config.region, self.env)

    def plan(self) -> int:
        from provision_min.up import run_plan

        lines, count = run_plan(self.config, None if self.offline else self.client(), self.state_path)
        for line in lines:
            print(line)
        if not count and not self.offline:
            print(f"provision-min: cluster {self.config.cluster} is complete; up would make no change",
                  file=sys.stderr)
        return EXIT_OK

    def up(self) -> int:
        from provision_min.topology import dashboard_url, topology
        from provision_min.up import run_up

        config = self.config
        result = run_up(config, self.client(), self.poller, self.state_path, create_bucket=self.create_bucket)
        topo = topology(config)
        print(f"cluster {config.cluster}: " + (f"{result.created} create calls made" if result.created
                                               else "complete, nothing to create"))
        print(f"OBS: {result.bucket}")
        print("masters: " + ", ".join(f"{n} {ip}" for n, ip in zip(topo.master_names, topo.master_ips, strict=True)))
        public_ip = result.ids.get("eip_address")
        if public_ip:
            print(f"master public IP: {public_ip}")
            print(f"dashboard: {dashboard_url(str(public_ip))}")
        print(f"agents: AS group {topo.as_group_name} (desired {config.agents.desired} at creation, min "
              f"{config.agents.min}, max {config.agents.max})")
        for warning in result.warnings:
            print(f"provision-min: warning: {warning}", file=sys.stderr)
        return EXIT_OK

    def status(self, as_json: bool) -> int:
        from provision_min.status import render, run_status

        report = run_status(self.config, self.client())
        print(json.dumps(report, indent=2) if as_json else render(report))
        return EXIT_OK if report["complete"] else EXIT_FAILED

    def scale(self, count: int) -> int:
        from provision_min.scale import run_scale

        scaled = run_scale(self.config, self.client(), count)
        print(f"AS group {scaled.group}: desired {scaled.before} -> {scaled.after} (min {scaled.minimum}, "
              f"max {scaled.maximum}; {scaled.current} instance(s) now)")
        return EXIT_OK

    def down(self) -> int:
        from provision_min.down import run_down

        result = run_down(self.config, self.client(), self.poller, self.state_path)
        if result.deleted:
            print(f"cluster {self.config.cluster}: removed ({result.deleted} delete calls)")
        else:
            print(f"cluster {self.config.cluster}: nothing to remove")
        if result.state_removed:
            print(f"state file {self.state_path} removed")
        return EXIT_OK
