"""The local cloud: a cluster of systemd-nspawn nodes on this machine (``provision-min ... --cloud local``)."""
