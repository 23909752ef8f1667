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
            i=$((i+1)); [ $i -lt 300 ] || { echo "dockerd did not start within 60 s; see $D/dockerd.log"; exit 1; }
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
# The node agent (wrapper mode + the CNI agent) for this host; its endpoints reach the hub through the
# admin API's authenticated ingest (the token hubd writes to $STATE/ingest.token, mode 0600).
mkdir -p "$STATE/node"
cat > "$STATE/hubd-node.toml" <<EOT
[hub]
id = "hub-local"
state_dir = "$STATE/node"

[ovn]
nb = "unix:$STATE/ovn/nb.sock"

[node]
docker = "unix://$DOCKER_SOCK"
listen = "unix:$STATE/node.sock"
# the Docker network + IPAM driver: Docker finds it here by its name (docker network create -d ovn-hub)
driver_socket = "/run/docker/plugins/ovn-hub.sock"

[cni]
enabled = true
socket = "$STATE/cni.sock"
hub_api = "unix:$STATE/hubd.sock"
hub_token_file = "$STATE/ingest.token"

[cni.networks.cni0]
subnet = "10.88.0.0/24"
gateway = "10.88.0.1"
EOT
cat > "$STATE/ovn-hub.conflist" <<EOT
{"cniVersion": "1.0.0", "name": "cni0",
 "plugins": [{"type": "ovn-hub", "network": "cni0", "socket": "$STATE/cni.sock", "timeout": 30}]}
EOT
NODE_PID=""
if ovs-vsctl --timeout=2 br-exists br-int 2>/dev/null; then
    # this host runs ovs-vswitchd with br-int (ovn-controller): plug into it. Its ovn-controller must use
    # the sandbox's SB (ovs-vsctl set Open_vSwitch . external_ids:ovn-remote=unix:$STATE/ovn/sb.sock).
    .venv/bin/hubd --role node --config "$STATE/hubd-node.toml" >"$STATE/node.log" 2>&1 &
    NODE_PID=$!
    trap 'kill $NODE_PID 2>/dev/null; wait $NODE_PID 2>/dev/null' EXIT INT TERM
    NODE_TEXT="The node agent runs (pid $NODE_PID, log $STATE/node.log): wrapper mode, the Docker driver, CNI.
    docker network create -d ovn-hub --ipam-driver ovn-hub --subnet 10.20.0.0/24 green
    docker run -d --name web2 --network green busybox:hub sleep 3600"
else
    NODE_TEXT="No br-int on this host (openvswitch-switch + ovn-host not running): no node agent started, so
  ports are programmed, not plugged, and the Docker network driver (-d ovn-hub) is not served.
  With them:  .venv/bin/hubd --role node --config $STATE/hubd-node.toml"
fi
cat <<EOT

  OVN Hub is starting with an OVN sandbox in $STATE/ovn and Docker at $DOCKER_SOCK.
  In another shell:
    export DOCKER_HOST=unix://$DOCKER_SOCK
    docker run -d --name web --network none --label ovn-hub.network=blue busybox:hub sleep 3600
    .venv/bin/hubctl --config $STATE/hubd.toml endpoints     # OVN allocated its address
    ovn-nbctl --db=unix:$STATE/ovn/nb.sock show
  $NODE_TEXT
  CNI: .venv/bin/ovn-hub-cni --install /opt/cni/bin; conflist $STATE/ovn-hub.conflist
  Stop with Ctrl-C.  For packets through OVN (data plane, wrapper mode, a policy): make demo

EOT
if [ -z "$NODE_PID" ]; then
    exec .venv/bin/hubd --config "$STATE/hubd.toml"
fi
.venv/bin/hubd --config "$STATE/hubd.toml"
