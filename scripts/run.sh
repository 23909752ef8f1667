#!/bin/sh
# make run: hubd with the embedded defaults (OVN sandbox + the local Docker engine).
set -eu
cd "$(dirname "$0")/.."
STATE="$(pwd)/state"
mkdir -p "$STATE"
DOCKER_SOCK=/var/run/docker.sock
if ! curl -sf --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null 2>&1; then
    # No engine runs: a private dockerd from the Debian package, on its own socket.
    D=/tmp/ovn-hub-dockerd
    DOCKER_SOCK=$D/docker.sock
    if ! curl -sf --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null 2>&1; then
        mkdir -p $D
        echo '{}' > $D/daemon.json
        dockerd --config-file $D/daemon.json --host unix://$DOCKER_SOCK --data-root $D/data --exec-root $D/exec \
            --pidfile $D/dockerd.pid --iptables=false --ip-masq=false --bridge=none >$D/dockerd.log 2>&1 &
        i=0
        until curl -sf --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null 2>&1; do
            i=$((i+1)); [ $i -lt 100 ] || { echo "dockerd did not start; see $D/dockerd.log"; exit 1; }
            sleep 0.2
        done
        echo "started a private dockerd (pid $(cat $D/dockerd.pid)); its socket: $DOCKER_SOCK"
    fi
fi
if ! DOCKER_HOST=unix://$DOCKER_SOCK docker image inspect busybox:hub >/dev/null 2>&1; then
    R=$(mktemp -d); mkdir -p $R/bin; cp /bin/busybox $R/bin/
    for a in sh sleep ping nc httpd ip cat ls nslookup wget; do ln -s busybox $R/bin/$a; done
    tar -C $R -c . | DOCKER_HOST=unix://$DOCKER_SOCK docker import - busybox:hub >/dev/null; rm -rf $R
fi
cat > "$STATE/hubd.toml" <<EOT
[hub]
id = "hub-local"
state_dir = "$STATE"

[ovn]
sandbox = true

[api]
listen = "unix:$STATE/hubd.sock"

[adapters.docker]
type = "docker"
cluster = "local"
url = "unix://$DOCKER_SOCK"

# an OVN Hub network (wrapper mode); Docker's own bridge networks are not mapped (mirror_bridge_networks)
[adapters.docker.networks.blue]
subnet = "10.10.0.0/24"
gateway = "10.10.0.1"

# one router joins every network that has a subnet (flat, like Kubernetes)
[routers.default]
networks = ["*"]
EOT
cat <<EOT

  OVN Hub is starting with an OVN sandbox in $STATE/ovn and Docker at $DOCKER_SOCK.
  In another shell:
    export DOCKER_HOST=unix://$DOCKER_SOCK
    docker run -d --name web --network none --label ovn-hub.network=blue busybox:hub sleep 3600
    .venv/bin/hubctl --config $STATE/hubd.toml endpoints     # OVN allocated its address
    ovn-nbctl --db=unix:$STATE/ovn/nb.sock show
  This runs no data plane (no ovn-controller, no hubd --role node): ports are programmed, not plugged.
  Stop with Ctrl-C.  For packets through OVN (data plane, wrapper mode, a policy): make demo.
  The Docker network driver (docker network create -d ovn-hub ...) needs hubd --role node: README.

EOT
exec .venv/bin/hubd --config "$STATE/hubd.toml"
