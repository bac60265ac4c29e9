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

# Ports an agent's own services hold (Mesos agent; Alluxio worker and proxy per version, "" without Alluxio):
# Spark's shuffle service must not take one of them.
AGENT_PORTS = {
    "": (MESOS_AGENT_PORT,),
    **{version: (MESOS_AGENT_PORT, *worker, ALLUXIO_PROXY_WEB) for version, worker in ALLUXIO_WORKER_PORTS.items()},
}
