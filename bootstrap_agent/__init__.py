"""bootstrap-agent: a node that configures itself into a Mesos + Alluxio cluster from its user-data."""

__version__ = "0.1.0"

# Defaults of the CLI contract (docs/architecture.md); here so that parsing arguments imports nothing heavy.
DEFAULT_USER_DATA_URL = "http://localhost/user-data"
DEFAULT_METADATA_URL = "http://169.254.169.254"
