"""The ports a node's services listen on: one source for the plan (readiness), the schema (what the shuffle
service may not take) and the provisioner (security group rules)."""

from __future__ import annotations

from bootstrap_agent.zk.paths import CLIENT_PORT

DASHBOARD_PORT = 443  # HTTPS; port 80 stays the node's loopback-only metadata cache
# The Mesos and Alluxio web UIs fetch their data by absolute path, so each is served at the root of an HTTPS port
# of its own (the landing page's /mesos/ and /alluxio/ lead there); provision_min opens both to public_cidr.
MESOS_UI_PORT = 5443
ALLUXIO_UI_PORT = 5444
SPARK_UI_PORT = 4040
# The optional tools listen on the master's loopback only: nginx on 443 is their one way in. Zeppelin keeps its
# default 8080 (nothing of Mesos, Alluxio or ZooKeeper uses it on a master); Jenkins, whose default is 8080
# too, moves to 8081.
ZEPPELIN_PORT = 8080
JENKINS_PORT = 8081
TOOLS_ADDRESS = "127.0.0.1"
ZK_CLIENT_PORT = CLIENT_PORT
MESOS_MASTER_PORT = 5050
MESOS_AGENT_PORT = 5051
ALLUXIO_MASTER_RPC, ALLUXIO_MASTER_WEB = 19998, 19999
ALLUXIO_PROXY_WEB = 39999
ALLUXIO_WORKER_PORTS = {"1.8": (29998, 29999, 30000), "2.9": (29999, 30000)}
ALLUXIO_EMBEDDED_JOURNAL_PORT = 19200
# Alluxio 2.x's job service (persisting files: ``fs persist`` and the default ASYNC_THROUGH writes): the job
# master's RPC and web ports (and its embedded journal with several masters), the job worker's RPC, data and web
# ports (v2.9.3 PropertyKey JOB_MASTER_RPC_PORT 20001, JOB_MASTER_WEB_PORT 20002,
# JOB_MASTER_EMBEDDED_JOURNAL_PORT 20003, JOB_WORKER_RPC_PORT 30001, JOB_WORKER_DATA_PORT 30002,
# JOB_WORKER_WEB_PORT 30003).
ALLUXIO_JOB_MASTER_RPC, ALLUXIO_JOB_MASTER_WEB, ALLUXIO_JOB_MASTER_JOURNAL = 20001, 20002, 20003
ALLUXIO_JOB_WORKER_PORTS = (30001, 30002, 30003)
# bootstrap-agent's own Prometheus exporter (bootstrap_agent/metrics.py), on every node's private address only:
# plain HTTP inside the cluster network, never on 0.0.0.0; the masters' targets.json names it for every member.
METRICS_PORT = 9110

# Ports an agent's own services hold (Mesos agent; Alluxio worker and proxy per version, "" without Alluxio):
# Spark's shuffle service must not take one of them.
AGENT_PORTS = {
    "": (MESOS_AGENT_PORT, METRICS_PORT),
    **{version: (MESOS_AGENT_PORT, *worker, ALLUXIO_PROXY_WEB, METRICS_PORT,
                 *(ALLUXIO_JOB_WORKER_PORTS if version != "1.8" else ()))
       for version, worker in ALLUXIO_WORKER_PORTS.items()},
}
