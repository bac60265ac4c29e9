"""The cluster's scaler: one per cluster, on the masters; it grows the agents' group when Mesos frameworks need
capacity and gives idle agents back through the graceful drain (issue 16).

Modules, one job each: ``signals`` (samples of the leading Mesos master and Alluxio, window smoothing),
``decide`` (the pure policy: signals + group + history → out N / in [ids] / none, with a reason), ``group``
(the AS client calls used and the group joined with the member znodes), ``state`` (the decision state in
ZooKeeper, fenced writes), ``leader`` (the election), ``loop`` (sample → decide → intent → act → done),
``chart`` (the server-side SVG of allocation, desired and ready agents). The policy is the master's user-data
section ``autoscaling`` (``bootstrap_agent.schema.autoscaling``).

What we took from the references (Yelp's clusterman, a Mesos autoscaler; Kubernetes' cluster-autoscaler):

* clusterman sizes a pool to a *setpoint* from the most constrained resource and clamps first to min/max,
  then to ``max_weight_to_add``/``max_weight_to_remove``; we do the same with the band's middle as setpoint
  and ``max_step``. It does not change anything while added instances have not joined; neither do we
  (``waiting_for_joins``, bounded by ``join_timeout``). It kills idle agents first; we remove only idle ones.
  clusterman has no cooldown of its own (it relies on AWS's and on the margin around the setpoint); our
  group acts at once on a desired count, so the cooldowns are ours.
* cluster-autoscaler removes a node only after it was unneeded for ``scale-down-unneeded-time`` and not within
  ``scale-down-delay-after-add`` of a scale-up: our ``idle_before_removal`` (an uninterrupted idle clock per
  agent) and ``cooldown_in`` counted from any change, a scale-out included.
* Both treat "requests that cannot be placed" as the strongest scale-up signal (clusterman's pending pods,
  the autoscaler's unschedulable pods); Mesos has no pending queue, so ours is a framework that is active,
  holds nothing and gets no offer for a whole window (``signals.Smoothed.starved``).
* Acting twice is the failure that matters with a leader change in the middle: decisions are absolute and
  written before they are carried out (``state``), and every write is fenced by the leader's znode.
"""
