"""The cluster on Open Telekom Cloud: the commands of ``provision_min.clouds.Cloud`` through the OTC API."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision_min.clouds import EXIT_CHANGES, EXIT_FAILED, EXIT_OK, Access
from provision_min.config import ClusterConfig
from provision_min.confirm import Confirmation
from provision_min.dashboard import Login
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
    up_report: dict[str, Any] = field(default_factory=dict)  # what ``up --json`` prints
    offline: bool = False  # plan only: assume an empty project, ask no API

    def client(self) -> OtcClient:
        from provision_min.credentials import load_auth

        auth = load_auth(self.cloud_name, dict(self.env), region=self.config.region)
        return OtcClient.connect(auth, self.config.region, self.env)

    def plan(self, as_json: bool = False, detailed_exitcode: bool = False) -> int:
        from provision_min.up import run_plan

        planned = run_plan(self.config, None if self.offline else self.client(), self.state_path)
        for line in planned.lines if as_json else planned.readable:
            print(line)
        for line in planned.replacing:  # a changed cluster file: what up replaces after its calls, in order
            print(line, file=sys.stderr if as_json else sys.stdout)
        summary = planned.summary() + ("" if planned.lines or planned.pending or self.offline
                                       else f": cluster {self.config.cluster} is complete; up would make no change")
        print(summary, file=sys.stderr if as_json else sys.stdout)  # --json: stdout stays JSON lines only
        return EXIT_CHANGES if detailed_exitcode and (planned.lines or planned.pending) else EXIT_OK

    def up(self, as_json: bool = False) -> int:
        """Create what is missing and wait; ``as_json``: the lines for a person go to stderr, one JSON object
        (what was made, where the dashboard is, how to log in) to stdout."""
        if not as_json:
            return self._up()
        with contextlib.redirect_stdout(sys.stderr):
            code = self._up()
        print(json.dumps(self.up_report))
        return code

    def _up(self) -> int:
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
        self.up_report = {"cluster": config.cluster, "create_calls": result.created, "bucket": result.bucket,
                          "masters": dict(zip(topo.master_names, topo.master_ips, strict=True)),
                          "public_ip": public_ip, "dashboard": dashboard_url(str(public_ip)) if public_ip else None,
                          "login": self.login().as_json(), "as_group": topo.as_group_name}
        if public_ip:
            print(f"master public IP: {public_ip}")
            print(f"dashboard: {dashboard_url(str(public_ip))}")
            print(f"dashboard login: {self.login().hint()}")
        print(f"agents: AS group {topo.as_group_name} (desired {config.agents.desired} at creation, min "
              f"{config.agents.min}, max {config.agents.max})")
        for warning in result.warnings:
            print(f"provision-min: warning: {warning}", file=sys.stderr)
        if public_ip:  # then wait until the cluster works, as its master sees it (exit 1 naming who is not ready)
            from provision_min.otc_readiness import wait_after_up

            ready = wait_after_up(config, self.state_path, self.env, str(public_ip), result.agents_desired,
                                  self.poller, sys.stdout)
            if ready is not None and result.rollout:  # a changed cluster file: replace what it changed
                self._rollout(result.documents)
            elif result.rollout:
                print("provision-min: warning: nodes made from the previous cluster file are not replaced: the "
                      "masters' status cannot be read to do it safely", file=sys.stderr)
        return EXIT_OK

    def _rollout(self, documents: dict[str, dict[str, Any]]) -> None:
        from provision_min.otc_scale import as_client
        from provision_min.rollout_run import all_members, run_rollout

        client = self.client()
        done = run_rollout(self.config, client, as_client(client), documents,
                           all_members(self.config, client, self.state_path, self.env), self.poller, sys.stdout)
        if done.agents_replaced or done.masters_replaced:
            print(f"cluster {self.config.cluster}: replaced {done.agents_replaced} agent(s) and "
                  f"{done.masters_replaced} master(s) made from the changed cluster file")
        for warning in done.warnings:
            print(f"provision-min: warning: {warning}", file=sys.stderr)

    def status(self, as_json: bool) -> int:
        from provision_min.status import render, run_status, with_nodes

        report = with_nodes(run_status(self.config, self.client()), self.config, self.state_path, self.env)
        report["login"] = self.login().as_json()
        print(json.dumps(report, indent=2) if as_json else render(report))
        if report.get("dashboard") and not as_json:
            print(f"  dashboard login: {report['login']['hint']}")
        return EXIT_OK if report["complete"] else EXIT_FAILED

    def login(self) -> Login:
        """How to log in to the dashboards: the cluster file's user and hash, or the password ``up`` generated."""
        from provision_min import dashboard, state

        current = state.load(self.state_path, self.config)
        return dashboard.login(self.config.dashboard, self.state_path, bool(current and current.dashboard_password))

    def scale(self, count: int, as_json: bool = False, wait: bool = True) -> int:
        """Raise the desired count, or remove the least loaded agents through the lifecycle hook (``scale``)."""
        from provision_min.otc_scale import as_client, members_source
        from provision_min.scale import render, run_scale

        client = self.client()
        members = members_source(self.config, client, self.state_path, self.env)
        scaled = run_scale(self.config, as_client(client), count, members, self.poller,
                           sys.stderr if as_json else sys.stdout, wait=wait)
        for warning in scaled.warnings:
            print(f"provision-min: warning: {warning}", file=sys.stderr)
        if as_json:
            print(json.dumps({"cluster": self.config.cluster, "group": scaled.group, "before": scaled.before,
                              "after": scaled.after, "min": scaled.minimum, "max": scaled.maximum,
                              "current": scaled.current, "removed": [d.as_json() for d in scaled.departures]}))
        else:
            print("\n".join(render(scaled)))
        return EXIT_OK

    def shell(self, node: str, command: Sequence[str], access: Access, *, root: bool = False) -> int:
        """``ssh`` to the node through the master's public address (see ``node_access``)."""
        import subprocess

        from provision_min.node_access import DEFAULT_USER, sudo
        from provision_min.otc_access import locate

        target, route = locate(self.config, self.client(), node, self.state_path, access.user or DEFAULT_USER,
                               access.identity)
        words = sudo(command) if root and command else list(command)
        argv = route.argv(target, words, tty=not command or sys.stdin.isatty())
        return subprocess.run(argv, check=False).returncode

    def down(self, confirm: Confirmation, as_json: bool = False) -> int:
        from provision_min.down import prepare_down, run_down

        client = self.client()
        found = prepare_down(self.config, client)
        items = found.listing(self.state_path)
        if items:
            confirm.ask(self.config.cluster, items)
        result = run_down(self.config, client, self.poller, self.state_path, found)
        if as_json:
            print(json.dumps({"cluster": self.config.cluster, "removed": items, "delete_calls": result.deleted,
                              "state_removed": result.state_removed}))
            return EXIT_OK
        if result.deleted:
            print(f"cluster {self.config.cluster}: removed ({result.deleted} delete calls)")
        else:
            print(f"cluster {self.config.cluster}: nothing to remove")
        if result.state_removed:
            print(f"state file {self.state_path} removed")
        return EXIT_OK
