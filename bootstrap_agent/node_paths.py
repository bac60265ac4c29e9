"""Where each file a node renders lives on the node: the one source for the plan, the service managers and the
CLI. Paths are node paths (``/etc/...``); a ``Layout`` puts them below a root."""

from __future__ import annotations

ZOO_CFG = "/etc/zookeeper/conf/zoo.cfg"
# ZooKeeper reads myid from its dataDir. Debian's zookeeper package ships /var/lib/zookeeper/myid itself (a
# symlink to the example conffile /etc/zookeeper/conf/myid) and puts it back at every upgrade, so the dataDir is
# a folder the package does not own (the unit's StateDirectory= hands it to the zookeeper user).
ZOO_DATA_DIR = "/var/lib/zookeeper/data"
ZOO_MYID = f"{ZOO_DATA_DIR}/myid"
MESOS_MASTER_ENV = "/etc/default/mesos-master"
MESOS_AGENT_ENV = "/etc/default/mesos-agent"
ALLUXIO_SITE = "/opt/alluxio/conf/alluxio-site.properties"
ALLUXIO_ENV = "/etc/default/alluxio"  # EnvironmentFile of the Alluxio units
# The oneshot unit (systemd/) that runs `bin/alluxio formatJournal`: once per instance, before the first start.
ALLUXIO_JOURNAL_FORMAT = "alluxio-journal-format"
AWS_CREDENTIALS = "/var/lib/bootstrap-agent/aws/credentials"  # agency keys, rotated without restarts
NGINX_DASHBOARD = "/etc/nginx/conf.d/bootstrap-agent-dashboard.conf"
DASHBOARD_CERT = "/etc/nginx/tls/bootstrap-agent-dashboard.crt"
DASHBOARD_KEY = "/etc/nginx/tls/bootstrap-agent-dashboard.key"
DASHBOARD_HTPASSWD = "/etc/nginx/bootstrap-agent-dashboard.htpasswd"
DASHBOARD_INDEX = "/var/lib/bootstrap-agent/www/index.html"
DASHBOARD_STATUS = "/var/lib/bootstrap-agent/www/status.json"  # the cluster status document (behind the auth)
# Every member as a Prometheus HTTP service-discovery document (behind the auth), served as /prometheus/targets.json
DASHBOARD_TARGETS = "/var/lib/bootstrap-agent/www/prometheus/targets.json"
ETC_HOSTS = "/etc/hosts"
UNIT_DIR = "/etc/systemd/system"  # where the rendered mount units go (the static units come with the image)
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"  # dockerd reads it by default
DOCKER_SOCKET = "/run/docker.sock"
SPARK_SHUFFLE_ENV = "/etc/default/spark-shuffle"
ZEPPELIN_ENV = "/etc/default/zeppelin"
JENKINS_ENV = "/etc/default/jenkins"

# The folders that may live in RAM (their mounts: bootstrap_agent/plan/mounts.py).
ALLUXIO_TIER0 = "/var/lib/alluxio/ramdisk"
MESOS_WORK_DIR = "/var/lib/mesos"
DOCKER_DATA_ROOT = "/var/lib/docker"
