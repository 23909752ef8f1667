#!/bin/sh
# Install what OVN Hub needs on Debian 12, only what is missing. Idempotent.
set -eu
cd "$(dirname "$0")/.."
PKGS="ovn-central ovn-host openvswitch-switch mosquitto busybox-static iproute2 iputils-ping python3-openvswitch python3-venv python3-dev systemd curl ethtool podman containernetworking-plugins"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# Never replace a Docker engine that is already installed (docker-ce, a tarball, ...).
if ! command -v dockerd >/dev/null 2>&1; then
    missing="$missing docker.io"
fi
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps package scripts from starting services on the host
    had_policy=0; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ $had_policy = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ $had_policy = 1 ] || rm -f /usr/sbin/policy-rc.d
fi
# Python: a venv on Debian's python3 so that python3-openvswitch's C JSON parser is used.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import ovs._json' 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
# Every Python package comes from requirements.lock, pinned with hashes (--no-deps: the lock is the whole
# closure, and it leaves out `ovs`, which python3-openvswitch provides). The project itself goes in editable,
# without build isolation, so its build backend is the pinned setuptools too. check-lock.py refuses a lock that
# disagrees with pyproject.toml before anything is installed, and checks the venv against it afterwards.
.venv/bin/python scripts/check-lock.py
stamp=.venv/.installed-$(cat requirements.lock pyproject.toml | md5sum | cut -c1-12)
if [ ! -e "$stamp" ]; then
    log=$(mktemp)
    pip=".venv/bin/pip --disable-pip-version-check"
    { $pip install -q --require-hashes --no-deps -r requirements.lock &&
      $pip install -q --no-build-isolation --no-deps -e . ; } >"$log" 2>&1 || { cat "$log"; rm -f "$log"; exit 1; }
    rm -f "$log"
    .venv/bin/python scripts/check-lock.py --installed
    rm -f .venv/.installed-*
    touch "$stamp"
fi
