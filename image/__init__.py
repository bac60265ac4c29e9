"""The bootstrap-agent machine image: one install script (``install-node.sh``), two builders.

* ``image.local``: a debootstrap rootfs for the local cloud (systemd-nspawn containers), cached under
  ``/var/cache/bootstrap-agent/images/`` by a hash of its recipe.
* ``image.otc``: a private image on Open Telekom Cloud, made on a temporary ECS that runs the same script.

``python -m image --help`` is the command line; ``image/README.md`` the manual.
"""
