"""The OTC fake's Auto Scaling and SMN services (a mixin of ``fake_otc.FakeOtc``; ``shared/reference/otc-api.md``,
SMN API v2): AS configurations and groups (``PAUSED`` → ``INSERVICE`` → ``DELETING`` → gone, the group filling
itself to its desired number), its instances, lifecycle hooks with their HANGING actions and callbacks
(``node_callback``, ``expire_hooks``: what the nodes and the hooks' timeouts do), instance removal, and the SMN
topics the hooks notify. The state lives on ``FakeOtc`` (``configs``, ``groups``, ``hooks``, ``hanging``,
``callbacks``, ``removing``, ``topics``); the servers an AS group launches are ECS servers of the fake.
"""

from __future__ import annotations

import re
from typing import Any

from tests.support.fake_otc_core import PROJECT_ID, REGION, FakeOtcState, Recorded, Reject, Res

LEAVING = ("REMOVING_WAIT", "REMOVING")  # an AS instance on its way out (not counted against desired)


class FakeAutoScaling(FakeOtcState):
    """AS and SMN of ``FakeOtc``; uses its shared helpers (``_require``, ``_find``, ``_new_id``,
    ``_decode_user_data``, ``_free_ip``, ``_remove_server``) and resource stores."""

    # --- AS -----------------------------------------------------------------------------------------------

    def _as(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("GET", "/scaling_configuration"):
            wanted = r.query.get("scaling_configuration_name", "")
            items = [c.data for c in self.configs.values() if wanted in c.data["scaling_configuration_name"]]
            return 200, {"scaling_configurations": items, "total_number": len(items), "start_number": 0, "limit": 20}
        if (m, p) == ("POST", "/scaling_configuration"):
            self._require(r, "scaling_configuration_name", "instance_config.flavorRef", "instance_config.imageRef",
                          "instance_config.disk[0].size", "instance_config.disk[0].volume_type",
                          "instance_config.disk[0].disk_type", "instance_config.key_name", "instance_config.user_data",
                          "instance_config.security_groups[0].id")
            config = r.body["instance_config"]
            if not isinstance(config.get("metadata", {}), dict):
                raise Reject(400, "AS.1004", "instance_config.metadata must be an object", violation=True)
            for group in config["security_groups"]:
                self._find(self.sgs, group["id"], "AS.1038", f"security group {group['id']} does not exist")
            name = r.body["scaling_configuration_name"]
            self._decode_user_data(r, "instance_config.user_data", name)
            cid = self._new_id("ascfg")
            self.configs[cid] = Res({"scaling_configuration_id": cid, "scaling_configuration_name": name,
                                     "instance_config": dict(config), "create_time": "now"})
            return 200, {"scaling_configuration_id": cid}
        if match := re.fullmatch(r"/scaling_configuration/([^/]+)", p):
            config = self._find(self.configs, match[1], "AS.1002", "The AS configuration does not exist.")
            if m == "GET":
                return 200, {"scaling_configuration": config.data}
            if m == "DELETE":
                if any(g.data["scaling_configuration_id"] == match[1] for g in self.groups.values()):
                    raise Reject(400, "AS.1039", "The AS configuration is being used by an AS group.")
                del self.configs[match[1]]
                return 204, None
        if (m, p) == ("GET", "/scaling_group"):
            wanted = r.query.get("scaling_group_name", "")
            items = [self._group_view(g) for g in self.groups.values() if wanted in g.data["scaling_group_name"]]
            return 200, {"scaling_groups": items, "total_number": len(items), "start_number": 0, "limit": 20}
        if (m, p) == ("POST", "/scaling_group"):
            self._require(r, "scaling_group_name", "scaling_configuration_id", "desire_instance_number",
                          "min_instance_number", "max_instance_number", "cool_down_time", "available_zones[0]",
                          "networks[0].id", "security_groups[0].id", "vpc_id", "health_periodic_audit_method",
                          "health_periodic_audit_time", "instance_terminate_policy", "delete_publicip")
            body = r.body
            if len(body["security_groups"]) > 1:
                raise Reject(400, "AS.2023", "an AS group takes at most one security group", violation=True)
            if body["health_periodic_audit_time"] not in (0, 1, 5, 15, 60, 180):
                raise Reject(400, "AS.2024", "health_periodic_audit_time must be 0, 1, 5, 15, 60 or 180",
                             violation=True)
            low, want, high = (body["min_instance_number"], body["desire_instance_number"],
                               body["max_instance_number"])
            if not low <= want <= high:
                raise Reject(400, "AS.2035", "min <= desired <= max does not hold", violation=True)
            self._find(self.configs, body["scaling_configuration_id"], "AS.1002",
                       "The AS configuration does not exist.")
            self._find(self.vpcs, body["vpc_id"], "AS.2010", "the VPC does not exist")
            self._find(self.subnets, body["networks"][0]["id"], "AS.2011", "the network does not exist")
            self._find(self.sgs, body["security_groups"][0]["id"], "AS.2012", "the security group does not exist")
            gid = self._new_id("asgrp")
            self.groups[gid] = Res({**body, "scaling_group_id": gid, "scaling_group_status": "INSERVICE"
                                    if self.group_initial_status == "INSERVICE" else "PAUSED",
                                    "instances": [], "is_scaling": False})
            if self.group_initial_status == "INSERVICE":
                self._fill_group(self.groups[gid])
            return 200, {"scaling_group_id": gid}
        if match := re.fullmatch(r"/scaling_group/([^/]+)", p):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            if m == "GET":
                group.poll()
                if match[1] not in self.groups:
                    raise Reject(404, "AS.2007", "The AS group does not exist.")
                return 200, {"scaling_group": self._group_view(group)}
            if m == "PUT":
                # the documented resize body, or the switch to another configuration ("Modifying an AS Group")
                self._require(r, "desire_instance_number|scaling_configuration_id")
                if "scaling_configuration_id" in r.body:
                    self._find(self.configs, r.body["scaling_configuration_id"], "AS.1002",
                               "The AS configuration does not exist.")
                    group.data["scaling_configuration_id"] = r.body["scaling_configuration_id"]
                if "desire_instance_number" in r.body:
                    want = r.body["desire_instance_number"]
                    if type(want) is not int or not (group.data["min_instance_number"] <= want
                                                     <= group.data["max_instance_number"]):
                        raise Reject(400, "AS.2035", "desire_instance_number is outside min..max", violation=True)
                    group.data["desire_instance_number"] = want
                    if group.data["scaling_group_status"] == "INSERVICE":
                        self._fill_group(group)
                return 200, {"scaling_group_id": match[1]}
            if m == "DELETE":
                if group.data["instances"] and r.query.get("force_delete") != "yes":
                    raise Reject(400, "AS.2048", "The AS group has instances: delete with force_delete=yes")
                group.data["scaling_group_status"] = "DELETING"
                self.hooks.pop(match[1], None)  # a group's lifecycle hooks go with it
                instances = list(group.data["instances"])
                for instance in instances:
                    instance["life_cycle_state"] = "REMOVING"
                    server = self.servers.get(instance["instance_id"])
                    if server is not None:
                        sid = instance["instance_id"]
                        server.data["status"] = "DELETING"
                        server.pending = [(self.delay + 1, lambda sid=sid: self._remove_server(sid, release_eip=True))]
                group.pending = [(self.delay, lambda: self.groups.pop(match[1], None))]
                return 204, None
        if m == "POST" and (match := re.fullmatch(r"/scaling_group/([^/]+)/action", p)):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            self._require(r, "action")
            action = r.body["action"]
            if action not in ("resume", "pause"):
                raise Reject(400, "AS.2001", f"unknown action {action}", violation=True)
            if action == "resume":
                if group.data["scaling_group_status"] == "INSERVICE":
                    raise Reject(400, "AS.2034", "The AS group is already in service.")
                def start() -> None:
                    group.data["scaling_group_status"] = "INSERVICE"
                    self._fill_group(group)

                group.pending = [(self.delay - 1, start)]
            else:
                group.data["scaling_group_status"] = "PAUSED"
            return 204, None
        if m == "GET" and (match := re.fullmatch(r"/scaling_group_instance/([^/]+)/list", p)):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            self._progress_removals(group)
            start, limit = int(r.query.get("start_number", 0)), int(r.query.get("limit", 20))
            items = group.data["instances"]
            return 200, {"scaling_group_instances": items[start:start + limit], "total_number": len(items),
                         "start_number": start, "limit": limit}
        if (answer := self._as_lifecycle(r)) is not None:
            return answer
        raise Reject(404, "AS.0000", f"no such API: {m} {p}", violation=True)

    def _group_view(self, group: Res) -> dict[str, Any]:
        data = group.data
        view = {k: v for k, v in data.items() if k != "instances"}
        view["current_instance_number"] = len(data["instances"])
        return view

    def _fill_group(self, group: Res) -> None:
        """Launch or remove instances until the group holds its desired number (as the service would)."""
        data = group.data
        config = self.configs[data["scaling_configuration_id"]]
        while len(self._staying(group)) < data["desire_instance_number"]:
            sid = self._new_id("server")
            port = self._new_id("port")
            name = f"{config.data['scaling_configuration_name']}-{sid[7:11]}"
            subnet = self.subnets[data["networks"][0]["id"]]
            self.servers[sid] = Res({"id": sid, "name": name, "status": "ACTIVE", "ip": self._free_ip(subnet),
                                     "subnet_id": subnet.data["id"], "vpc_id": data["vpc_id"],
                                     "sg_ids": [g["id"] for g in data["security_groups"]], "port": port,
                                     "flavor": config.data["instance_config"]["flavorRef"],
                                     "key_name": config.data["instance_config"]["key_name"],
                                     "as_group": data["scaling_group_id"]})
            self.ports[port] = sid
            data["instances"].append({"instance_id": sid, "instance_name": name,
                                      "scaling_group_id": data["scaling_group_id"],
                                      "life_cycle_state": "INSERVICE", "health_status": "NORMAL",
                                      "scaling_configuration_id": data["scaling_configuration_id"]})
        while len(self._staying(group)) > data["desire_instance_number"]:
            self._start_removal(group, self._staying(group)[-1])  # the group's own choice: the newest

    # --- AS lifecycle hooks, instance removal, SMN (shared/reference/otc-api.md; SMN API v2) -----------------

    @staticmethod
    def _staying(group: Res) -> list[dict[str, Any]]:
        return [i for i in group.data["instances"] if i["life_cycle_state"] not in LEAVING]

    def _start_removal(self, group: Res, instance: dict[str, Any]) -> None:
        """As the group removes an instance: with an INSTANCE_TERMINATING hook it waits in REMOVING_WAIT with
        a HANGING action (until a callback or ``expire_hooks``), else it goes at once."""
        gid = group.data["scaling_group_id"]
        hook = next((h for h in self.hooks.get(gid, {}).values()
                     if h["lifecycle_hook_type"] == "INSTANCE_TERMINATING"), None)
        if hook is None:
            self._finish_removal(group, instance)
            return
        instance["life_cycle_state"] = "REMOVING_WAIT"
        key = f"key-{next(self.ids):06d}-{instance['instance_id'][:8]}"
        self.hanging[key] = {"lifecycle_hook_name": hook["lifecycle_hook_name"], "lifecycle_action_key": key,
                             "instance_id": instance["instance_id"], "scaling_group_id": gid,
                             "lifecycle_hook_status": "HANGING", "timeout": "2026-11-29T16:00:00Z",
                             "default_result": hook["default_result"]}

    def _finish_removal(self, group: Res, instance: dict[str, Any]) -> None:
        """REMOVING, then gone from the list and the server deleted (``instance_delete``)."""
        instance["life_cycle_state"] = "REMOVING"
        if instance in group.data["instances"]:
            group.data["instances"].remove(instance)
        self._remove_server(instance["instance_id"], release_eip=True)

    def node_callback(self, instance_id: str, result: str = "CONTINUE") -> bool:
        """What a node's own callback does (its signed ``PUT .../callback`` is the AS service's to check):
        the instance's HANGING action gets ``result``; False when it has none."""
        for key, action in self.hanging.items():
            if action["instance_id"] == instance_id and action["lifecycle_hook_status"] == "HANGING":
                self.callbacks.append({"lifecycle_action_key": key, "lifecycle_action_result": result})
                if result != "EXTEND":
                    self._resolve(key, result)
                return True
        return False

    def expire_hooks(self) -> list[str]:
        """Every HANGING action reaches its hook's default_timeout: its default_result applies (the ids)."""
        done = []
        for key, action in list(self.hanging.items()):
            if action["lifecycle_hook_status"] == "HANGING":
                self._resolve(key, action["default_result"])
                done.append(action["instance_id"])
        return done

    def _resolve(self, key: str, result: str) -> None:
        action = self.hanging[key]
        action["lifecycle_hook_status"] = result
        group = self.groups.get(action["scaling_group_id"])
        if group is None:
            return
        for instance in group.data["instances"]:
            if instance["instance_id"] == action["instance_id"]:  # on a terminating hook ABANDON removes too
                instance["life_cycle_state"] = "REMOVING"  # listed as such for ``delay`` more lists, then gone
                self.removing[instance["instance_id"]] = self.delay

    def _progress_removals(self, group: Res) -> None:
        for instance in list(group.data["instances"]):
            left = self.removing.get(instance["instance_id"])
            if left is None:
                continue
            if left <= 0:
                del self.removing[instance["instance_id"]]
                self._finish_removal(group, instance)
            else:
                self.removing[instance["instance_id"]] = left - 1

    def _as_lifecycle(self, r: Recorded) -> tuple[int, Any] | None:
        m, p = r.method, r.path
        if m == "POST" and (match := re.fullmatch(r"/scaling_group_instance/([^/]+)/action", p)):
            group = self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            self._require(r, "action", "instances_id[0]")
            if r.body["action"] != "REMOVE":
                raise Reject(400, "AS.4001", f"unsupported action {r.body['action']}", violation=True)
            if r.body.get("instance_delete") not in (None, "yes", "no"):
                raise Reject(400, "AS.4002", "instance_delete must be yes or no", violation=True)
            wanted = list(r.body["instances_id"])
            by_id = {i["instance_id"]: i for i in group.data["instances"]}
            for iid in wanted:
                if iid not in by_id:
                    raise Reject(400, "AS.4003", f"instance {iid} is not in the AS group")
                if by_id[iid]["life_cycle_state"] != "INSERVICE":
                    raise Reject(400, "AS.4004", f"instance {iid} is {by_id[iid]['life_cycle_state']}, not INSERVICE")
            staying = len(self._staying(group)) - len(wanted)
            if staying < group.data["min_instance_number"]:
                raise Reject(400, "AS.4005", "removing the instances would leave fewer than the group's minimum")
            group.data["desire_instance_number"] = max(group.data["min_instance_number"],
                                                      group.data["desire_instance_number"] - len(wanted))
            for iid in wanted:
                self._start_removal(group, by_id[iid])
            return 204, None
        if match := re.fullmatch(r"/scaling_lifecycle_hook/([^/]+)", p):
            if m != "POST":
                return None
            self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            self._require(r, "lifecycle_hook_name", "lifecycle_hook_type", "notification_topic_urn")
            body = r.body
            name = body["lifecycle_hook_name"]
            if len(name) > 32:
                raise Reject(400, "AS.1001", "lifecycle_hook_name is longer than 32 characters", violation=True)
            if body["lifecycle_hook_type"] not in ("INSTANCE_LAUNCHING", "INSTANCE_TERMINATING"):
                raise Reject(400, "AS.1001", "lifecycle_hook_type is invalid", violation=True)
            if body.get("default_result", "ABANDON") not in ("ABANDON", "CONTINUE"):
                raise Reject(400, "AS.1001", "default_result is invalid", violation=True)
            timeout = body.get("default_timeout", 3600)
            if type(timeout) is not int or not 300 <= timeout <= 86400:
                raise Reject(400, "AS.1001", "default_timeout must be 300..86400", violation=True)
            if body["notification_topic_urn"] not in self.topics:
                raise Reject(400, "AS.1060", "the SMN topic does not exist")
            hooks = self.hooks.setdefault(match[1], {})
            if name in hooks:
                raise Reject(400, "AS.1061", f"a lifecycle hook named {name} exists")
            hooks[name] = {"lifecycle_hook_name": name, "lifecycle_hook_type": body["lifecycle_hook_type"],
                           "default_result": body.get("default_result", "ABANDON"), "default_timeout": timeout,
                           "notification_topic_urn": body["notification_topic_urn"],
                           "notification_topic_name": self.topics[body["notification_topic_urn"]]["name"],
                           "notification_metadata": body.get("notification_metadata"), "create_time": "now"}
            return 200, hooks[name]
        if m == "GET" and (match := re.fullmatch(r"/scaling_lifecycle_hook/([^/]+)/list", p)):
            self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            return 200, {"lifecycle_hooks": list(self.hooks.get(match[1], {}).values())}
        if match := re.fullmatch(r"/scaling_lifecycle_hook/([^/]+)/([^/]+)", p):
            hook = self.hooks.get(match[1], {}).get(match[2])
            if hook is None:
                raise Reject(404, "AS.1062", "The lifecycle hook does not exist.")
            if m == "PUT":
                for key in ("lifecycle_hook_type", "default_result", "default_timeout", "notification_topic_urn",
                            "notification_metadata"):
                    if key in r.body:
                        hook[key] = r.body[key]
                return 200, hook
            if m == "DELETE":
                del self.hooks[match[1]][match[2]]
                return 204, None
            if m == "GET":
                return 200, hook
        if m == "GET" and (match := re.fullmatch(r"/scaling_instance_hook/([^/]+)/list", p)):
            self._find(self.groups, match[1], "AS.2007", "The AS group does not exist.")
            instance_id = r.query.get("instance_id")
            hanging = [a for a in self.hanging.values() if a["scaling_group_id"] == match[1]
                       and a["lifecycle_hook_status"] == "HANGING" and instance_id in (None, a["instance_id"])]
            return 200, {"instance_hanging_info": hanging}
        if m == "PUT" and (match := re.fullmatch(r"/scaling_instance_hook/([^/]+)/callback", p)):
            self._require(r, "lifecycle_action_result", "lifecycle_action_key|instance_id")
            result = r.body["lifecycle_action_result"]
            if result not in ("CONTINUE", "ABANDON", "EXTEND"):
                raise Reject(400, "AS.1001", "lifecycle_action_result is invalid", violation=True)
            action_key = str(r.body.get("lifecycle_action_key") or next(
                (k for k, a in self.hanging.items() if a["instance_id"] == r.body.get("instance_id")
                 and a["lifecycle_hook_name"] == r.body.get("lifecycle_hook_name")), ""))
            action = self.hanging.get(action_key)
            if action is None or action["scaling_group_id"] != match[1] or action["lifecycle_hook_status"] != "HANGING":
                raise Reject(400, "AS.1063", "no hanging lifecycle action matches")
            self.callbacks.append(dict(r.body))
            if result != "EXTEND":
                self._resolve(action_key, result)
            return 204, None
        return None

    def _smn(self, r: Recorded) -> tuple[int, Any]:
        m, p = r.method, r.path
        if (m, p) == ("POST", "/notifications/topics"):
            self._require(r, "name", "display_name")
            name = r.body["name"]
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}", str(name)):
                raise Reject(400, "SMN.00010001", "invalid topic name", violation=True)
            for urn, topic in self.topics.items():
                if topic["name"] == name:  # documented as idempotent: the existing topic, 200
                    return 200, {"request_id": "req-1", "topic_urn": urn}
            urn = f"urn:smn:{REGION}:{PROJECT_ID}:{name}"
            self.topics[urn] = {"topic_urn": urn, "name": name, "display_name": r.body["display_name"],
                                "push_policy": 0, "topic_id": self._new_id("topic")}
            return 201, {"request_id": "req-1", "topic_urn": urn}
        if (m, p) == ("GET", "/notifications/topics"):
            offset, limit = int(r.query.get("offset", 0)), int(r.query.get("limit", 100))
            items = list(self.topics.values())
            return 200, {"request_id": "req-2", "topic_count": len(items), "topics": items[offset:offset + limit]}
        if m == "DELETE" and (match := re.fullmatch(r"/notifications/topics/([^/]+)", p)):
            urn = match[1]
            if urn not in self.topics:
                raise Reject(404, "SMN.00010002", "the topic does not exist")
            if any(h["notification_topic_urn"] == urn for hooks in self.hooks.values() for h in hooks.values()):
                raise Reject(400, "SMN.00010003", "the topic is used by a lifecycle hook")
            del self.topics[urn]
            return 200, {"request_id": "req-3"}
        raise Reject(404, "SMN.0000", f"no such API: {m} {p}", violation=True)
