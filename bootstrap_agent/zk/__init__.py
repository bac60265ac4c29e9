"""The ZooKeeper edge, one recipe a module (as kazoo's ``Lock`` and ``DataWatch`` are one class each).

``session`` owns the kazoo client, its deadlines and its state; ``tree`` the cluster's znodes and their ACL;
``registration`` this node's own member znodes; ``peers`` reading other members; ``watches`` the watch
table; ``config`` the run-time overrides with compare-and-set; ``lock`` the restart lock. The store that
composes them, and the interface the daemon types against, live in ``bootstrap_agent.cluster``.
"""
