"""The stand-ins: programs that take the place of Mesos, Alluxio, Spark's shuffle service, dockerd, Zeppelin
and Jenkins where the real ones cannot be installed, and refuse what the real ones refuse
(``bootstrap_agent/data/names/STARTUP-RULES.md``).

A distribution of its own (``standins/pyproject.toml``), not part of the agent: only the stand-in image
(``image/install-node.sh`` with ``STANDINS=yes``) and the test environment install it. It reads the agent's
versioned name lists (``bootstrap_agent.names``); the agent never imports it, and finds its process commands
(``standins.commands``) through the ``bootstrap_agent.process_commands`` entry point.
"""
