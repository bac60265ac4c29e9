"""Extract the Spark property keys one Spark release registers: the tool behind ``data/names/spark-3.5.txt``.

Spark declares most properties as ``ConfigEntry`` objects (``ConfigBuilder("spark.x")...`` in the Scala
objects ``org.apache.spark.internal.config.*``, ``org.apache.spark.deploy.mesos.config``, ``SQLConf``, ...),
and every entry registers itself, with its ``withAlternative`` names, in ``ConfigEntry.knownConfigs`` when its
object is initialised. The rest it reads by literal name (``spark.master``, ``spark.local.dir``, the
deprecated names of ``SparkConf.deprecatedConfigs``) or builds in ``TransportConf`` as
``spark.<module>.io.*``. So the list is the union of three readings of the release's own jars:

1. the registry, read by a JVM that initialises every config object (``java`` running a single source file);
2. every string constant ``spark.x.y`` in the class files of core, Mesos, network and the launcher (a
   constant-pool scan, no JVM): keys read by literal name;
3. ``TransportConf``'s ``io.*``/``sasl.*`` suffixes, filled in for the modules ``shuffle`` and ``rpc``.

No Scala compiler and no hand-copied documentation:

    python tools/extract_spark_names.py SPARK_HOME [--note TEXT ...] > data/names/spark-3.5.txt

``SPARK_HOME`` is a Spark binary distribution, e.g. the ``pyspark`` folder of PyPI's ``pyspark`` 3.5.x wheel
(``jars/spark-core_2.12-3.5.x.jar`` ...). It needs a JDK (``java`` that runs a single source file, i.e. with
the ``jdk.compiler`` module). Not run in CI. The prefixes Spark passes through without declaring the keys
(``spark.hadoop.*``, ``spark.executorEnv.*``, ...) are not in the registry: ``bootstrap_agent/spark.py``
accepts them as patterns (``SPARK_KEY_PREFIXES``), and the header says so.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

# Initialises every Scala object (class name ending in "$") of the config packages found in the given jars,
# then prints ConfigEntry.knownConfigs' keys and each entry's alternatives, one a line.
_LISTER = r"""
import java.util.*;
import java.util.jar.*;

public class ListSparkConfigs {
  static boolean wanted(String name) {
    if (!name.startsWith("org/apache/spark/") || !name.endsWith("$.class") || name.contains("$$")) return false;
    return name.contains("/config/") || name.endsWith("/config$.class") || name.endsWith("Conf$.class");
  }
  public static void main(String[] jars) throws Exception {
    ClassLoader loader = ListSparkConfigs.class.getClassLoader();
    for (String path : jars) {
      try (JarFile jar = new JarFile(path)) {
        for (Enumeration<JarEntry> e = jar.entries(); e.hasMoreElements();) {
          String name = e.nextElement().getName();
          if (!wanted(name)) continue;
          String cls = name.substring(0, name.length() - 6).replace('/', '.');
          try { Class.forName(cls, true, loader); }
          catch (Throwable t) { System.err.println("skip " + cls + ": " + t); }
        }
      }
    }
    Class<?> registry = Class.forName("org.apache.spark.internal.config.ConfigEntry$");
    Object module = registry.getField("MODULE$").get(null);
    Map<?, ?> known = (Map<?, ?>) registry.getMethod("knownConfigs").invoke(module);
    TreeSet<String> keys = new TreeSet<>();
    for (Map.Entry<?, ?> entry : known.entrySet()) {
      keys.add((String) entry.getKey());
      Object alternatives = entry.getValue().getClass().getMethod("alternatives").invoke(entry.getValue());
      Object it = alternatives.getClass().getMethod("iterator").invoke(alternatives);
      java.lang.reflect.Method hasNext = it.getClass().getMethod("hasNext");
      java.lang.reflect.Method next = it.getClass().getMethod("next");
      hasNext.setAccessible(true);
      next.setAccessible(true);
      while ((Boolean) hasNext.invoke(it)) keys.add((String) next.invoke(it));
    }
    for (String key : keys) System.out.println(key);
  }
}
"""

#: The jars whose config objects are read: core (with network), Mesos, SQL, and the launcher's own keys.
JAR_PATTERNS = ("spark-core_*.jar", "spark-mesos_*.jar", "spark-network-*.jar", "spark-sql_*.jar",
                "spark-catalyst_*.jar", "spark-launcher_*.jar")
#: Jars whose string constants are scanned (2.): not SQL's, whose literals are mostly not properties.
LITERAL_JAR_PATTERNS = ("spark-core_*.jar", "spark-mesos_*.jar", "spark-network-*.jar", "spark-launcher_*.jar")
TRANSPORT_CONF = "org/apache/spark/network/util/TransportConf.class"
TRANSPORT_MODULES = ("shuffle", "rpc")  # SparkTransportConf.fromSparkConf(conf, "shuffle" | "rpc", ...)
_VERSION = re.compile(r"spark-core_[0-9.]+-(\d+\.\d+\.\d+)\.jar$")
_LITERAL_KEY = re.compile(r"^spark(\.[A-Za-z][A-Za-z0-9_-]*)+$")
_TRANSPORT_SUFFIX = re.compile(r"^(io|sasl)\.[A-Za-z]+$")
# Constant-pool tags -> bytes after the tag (Utf8 = 1 is handled apart; 5/6 take two slots).
_CP_SIZES = {3: 4, 4: 4, 5: 8, 6: 8, 7: 2, 8: 2, 9: 4, 10: 4, 11: 4, 12: 4, 15: 3, 16: 2, 17: 4, 18: 4, 19: 2, 20: 2}


def class_strings(data: bytes) -> Iterator[str]:
    """The CONSTANT_Utf8 entries of one class file (JVM spec 4.4): every string literal it uses."""
    if data[:4] != b"\xca\xfe\xba\xbe":
        return
    count, pos, index = struct.unpack(">H", data[8:10])[0], 10, 1
    while index < count:
        tag = data[pos]
        if tag == 1:
            length = struct.unpack(">H", data[pos + 1:pos + 3])[0]
            yield data[pos + 3:pos + 3 + length].decode("utf-8", "replace")
            pos += 3 + length
        elif tag in _CP_SIZES:
            pos += 1 + _CP_SIZES[tag]
            index += 1 if tag in (5, 6) else 0
        else:
            raise SystemExit(f"unknown constant-pool tag {tag}: not a class file this tool understands")
        index += 1


def literal_keys(spark_home: Path) -> set[str]:
    """2. and 3.: property names the code reads by literal name, and TransportConf's per-module keys."""
    keys: set[str] = set()
    for pattern in LITERAL_JAR_PATTERNS:
        for jar in sorted((spark_home / "jars").glob(pattern)):
            with zipfile.ZipFile(jar) as archive:
                for name in archive.namelist():
                    if not name.endswith(".class"):
                        continue
                    strings = list(class_strings(archive.read(name)))
                    keys.update(s for s in strings if _LITERAL_KEY.match(s))
                    if name == TRANSPORT_CONF:
                        suffixes = [s for s in strings if _TRANSPORT_SUFFIX.match(s)]
                        keys.update(f"spark.{m}.{s}" for m in TRANSPORT_MODULES for s in suffixes)
    if "spark.shuffle.io.maxRetries" not in keys or "spark.local.dir" not in keys:
        raise SystemExit("the class-file scan found no spark.shuffle.io.* or spark.local.dir: jars not as expected")
    return keys


def spark_version(spark_home: Path) -> str:
    for jar in sorted((spark_home / "jars").glob("spark-core_*.jar")):
        match = _VERSION.search(jar.name)
        if match:
            return match.group(1)
    raise SystemExit(f"{spark_home}/jars has no spark-core_<scala>-<version>.jar: not a Spark distribution")


def extract(spark_home: Path) -> list[str]:
    """1. to 3., sorted; fails loudly when the registry looks empty or the JVM fails."""
    jars = sorted(str(p) for pattern in JAR_PATTERNS for p in (spark_home / "jars").glob(pattern))
    with tempfile.TemporaryDirectory(prefix="spark-names-") as tmp:
        source = Path(tmp, "ListSparkConfigs.java")
        source.write_text(_LISTER)
        result = subprocess.run(
            ["java", "-cp", str(spark_home / "jars") + "/*", str(source), *jars],
            capture_output=True, text=True, timeout=300, check=False,
        )
    if result.returncode != 0:
        raise SystemExit(f"java failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    keys = sorted({line.strip() for line in result.stdout.splitlines() if line.strip()} | literal_keys(spark_home))
    if len(keys) < 500 or "spark.shuffle.service.enabled" not in keys:
        raise SystemExit(f"only {len(keys)} keys, or spark.shuffle.service.enabled missing: the registry was not read")
    return keys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spark_home", type=Path)
    parser.add_argument("--note", action="append", default=[], help="extra header line (provenance, caveats)")
    args = parser.parse_args(argv)
    version = spark_version(args.spark_home)
    keys = extract(args.spark_home)
    header = [
        f"Spark {version} property keys, read by tools/extract_spark_names.py from the release's jars:",
        "ConfigEntry.knownConfigs with every entry's alternatives, after initialising the config objects of",
        "  " + ", ".join(JAR_PATTERNS) + ";",
        "every string constant spark.x.y in the class files of " + ", ".join(LITERAL_JAR_PATTERNS) + ";",
        "TransportConf's io.*/sasl.* suffixes for the modules " + ", ".join(TRANSPORT_MODULES) + ".",
        "Prefixes Spark passes on without declaring the keys are patterns, not listed: see",
        "  bootstrap_agent/spark.py SPARK_KEY_PREFIXES (spark.hadoop.*, spark.executorEnv.*, ...).",
        *args.note,
        f"{len(keys)} keys.",
    ]
    sys.stdout.write("".join(f"# {line}\n" for line in header) + "".join(f"{key}\n" for key in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
