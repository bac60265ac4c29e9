"""An agent's drain: leaving the cluster only after its work and its cached data are safe (issue 15).

``machine`` decides (pure), ``record`` remembers (atomically, across restarts), ``mesos_ops``, ``alluxio_ops``,
``shuffle`` and ``lifecycle`` talk to the real programs and the AS API, ``probe`` measures the ``load`` every
pass, ``runner`` drives one drain step by step for the daemon. ``report`` holds the member znode's ``load``
and ``drain`` values, which the member parser validates.
"""
