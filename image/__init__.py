"""The bootstrap-agent machine image: one install script (``install-node.sh``), two builders.

* ``image.local``: a debootstrap rootfs for the local cloud (systemd-nspawn containers), cached under
  ``/var/cache/bootstrap-agent/images/`` by a hash of its recipe.
* ``image.otc``: a private image on Open Telekom Cloud, made on a temporary ECS that runs the same script.

``provision-min image build`` (``image.command``; in a checkout also ``python -m image otc``) builds the OTC
image from an installed provision-min; ``python -m image --help`` the builders; ``image/README.md`` the manual.
"""
