"""CNI, the pure part: what an attachment asked by CNI is, and what its result says.

Knows no socket and no runtime (the node agent, ``hub/cni.py``, serves the
plugin's requests; ``hub/cniplugin.py`` is the plugin).  From one request:

* :func:`endpoint_uid` — the uid of the Endpoint a runtime without an
  orchestrator adapter gets (source ``cni/<node>``): container id + "-" +
  ifname, made to fit the model's uid rules;
* :func:`labels_of` — labels from ``CNI_ARGS`` (``K8S_*``, ``IgnoreUnknown``,
  ``IP``, ``MAC`` left out) and ``runtimeConfig.labels``;
* :func:`mesos_network_info`, :func:`network_info_labels` — what Mesos'
  ``network/cni`` isolator passes in ``args["org.apache.mesos"]``;
* :func:`garden_app_instance`, :func:`garden_labels` — what Cloud Foundry's
  garden-external-networker injects for an app instance's container
  (``metadata``: the Cloud Controller's container network properties);
* :func:`static_address` — a fixed IP/MAC from the ``ips``/``mac``
  capabilities (``runtimeConfig``) or ``CNI_ARGS`` ``IP=``/``MAC=``;
* :func:`result` — the ADD result of an :class:`~core.vif.attachment.Attachment`
  in the spec's shape for the requested version (interfaces: the host veth and
  the sandbox interface; ips with their gateway; the default route; DNS: the
  gateway, where OVN answers, and the search domain);
* :func:`check` — CHECK: what differs between the attachment and the
  interface the kernel has (an out-of-band change), and the prevResult.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .attachment import Attachment
from .link import LinkState

__all__ = ["check", "dns_search", "endpoint_uid", "garden_app_instance", "garden_labels", "labels_of",
           "mesos_network_info", "network_info_labels", "result", "static_address"]

_NOT_LABELS = frozenset({"IgnoreUnknown", "IP", "MAC"})
_UID_BAD = re.compile(r"[^A-Za-z0-9_.\-]")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def endpoint_uid(container_id: str, ifname: str) -> str:
    """Container id + "-" + ifname: unique per attachment on a node, no whitespace,
    at most 253 characters (the model's uid limit)."""
    uid = _UID_BAD.sub("_", f"{container_id}-{ifname}")
    return uid[:253]


def labels_of(args: dict[str, str], runtime_config: dict[str, Any]) -> dict[str, str]:
    """CNI_ARGS (without the Kubernetes and address keys) and ``runtimeConfig.labels``."""
    out = {k: v for k, v in args.items() if not k.startswith("K8S_") and k not in _NOT_LABELS}
    labels = runtime_config.get("labels")
    if isinstance(labels, dict):
        out.update({str(k): str(v) for k, v in labels.items()})
    elif isinstance(labels, list):  # [{"key": ..., "value": ...}] as some runtimes send it
        for item in labels:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                out[item["key"]] = str(item.get("value", ""))
    return out


def mesos_network_info(conf: dict[str, Any]) -> dict[str, Any] | None:
    """The ``NetworkInfo`` Mesos' ``network/cni`` isolator puts in ``args["org.apache.mesos"]["network_info"]``
    of the network configuration, or None (not a Mesos container)."""
    args = conf.get("args")
    mesos = args.get("org.apache.mesos") if isinstance(args, dict) else None
    info = mesos.get("network_info") if isinstance(mesos, dict) else None
    return info if isinstance(info, dict) else None


def network_info_labels(info: dict[str, Any]) -> dict[str, str]:
    """``NetworkInfo.labels`` (``{"labels": [{"key", "value"}]}``) as a dict; malformed items are left out."""
    labels = info.get("labels")
    items = labels.get("labels") if isinstance(labels, dict) else None
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str) and item["key"]:
            value = item.get("value", "")
            out[item["key"]] = value if isinstance(value, str) else str(value)
    return out


def garden_app_instance(conf: dict[str, Any]) -> dict[str, str] | None:
    """The ``metadata`` Garden's external networker injects into each plugin's
    configuration, when it is an app instance's; else None.

    The Cloud Controller gives every Diego container the network properties
    ``policy_group_id`` (= ``app_id``, the app guid), ``app_id``, ``space_id``,
    ``org_id``, ``ports`` and ``container_workload`` (``app``, ``task`` or
    ``staging``); garden-external-networker injects them as the top-level key
    ``metadata`` (libcni's InjectConf; cf-networking's 3rd-party doc shows them
    under ``runtimeConfig.metadata``: both are read).  An ``app`` container's
    handle, ``CNI_CONTAINERID``, is its ActualLRP's ``instance_guid``.  Tasks and
    staging containers are no LRP instances (None)."""
    meta = conf.get("metadata")
    if not isinstance(meta, dict):
        rc = conf.get("runtimeConfig")
        meta = rc.get("metadata") if isinstance(rc, dict) else None
    if not isinstance(meta, dict):
        return None
    out = {str(k): v for k, v in meta.items() if isinstance(v, str)}
    if not (out.get("app_id") or out.get("policy_group_id")):
        return None
    if out.get("container_workload", "app") not in ("", "app"):
        return None
    return out


#: Garden's metadata key → the label the cloudfoundry adapter gives its endpoints
#: (adapters/cloudfoundry/normalize.py; tests/unit/test_cni.py checks they agree)
GARDEN_LABELS = {"app_id": "cloudfoundry.org/app-guid", "space_id": "cloudfoundry.org/space-guid",
                 "org_id": "cloudfoundry.org/org-guid"}  # fmt: skip


def garden_labels(meta: dict[str, str]) -> dict[str, str]:
    """The app, space and org guids of Garden's metadata as the cloudfoundry adapter's labels."""
    out = {label: meta[key] for key, label in GARDEN_LABELS.items() if meta.get(key)}
    if "cloudfoundry.org/app-guid" not in out and meta.get("policy_group_id"):
        out["cloudfoundry.org/app-guid"] = meta["policy_group_id"]
    return out


def static_address(args: dict[str, str], runtime_config: dict[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """(IPs, MAC) the runtime asks for; ValueError naming what is malformed."""
    ips: list[str] = []
    raw = runtime_config.get("ips")
    if isinstance(raw, list) and raw:
        cands = [str(x) for x in raw]
    elif args.get("IP"):
        cands = args["IP"].split(",")
    else:
        cands = []
    for text in cands:
        try:
            ips.append(str(ipaddress.ip_interface(text.strip()).ip))
        except ValueError:
            raise ValueError(f"ips: {text[:60]!r} is not an IP address") from None
    mac = runtime_config.get("mac") or args.get("MAC") or None
    if mac is not None:
        mac = str(mac).lower()
        if not _MAC.fullmatch(mac) or int(mac[:2], 16) & 1:
            raise ValueError(f"mac: {mac[:40]!r} is not a unicast MAC address")
    return tuple(ips), mac


def dns_search(namespace: str, source: str, zone: str) -> list[str]:
    """The search domain of an endpoint's own namespace (the fabric's names are
    ``<name>.<namespace>.<orchestrator>.<cluster>.<zone>``), or none."""
    if not zone or not namespace or "/" not in source:
        return []
    orch, _, cluster = source.partition("/")
    return [f"{namespace}.{orch}.{cluster}.{zone}".lower()]


def result(version: str, a: Attachment, *, host_mac: str = "", search: list[str] | None = None, dns: bool = True) -> dict[str, Any]:
    """The ADD result (also what CHECK's prevResult should be): SPEC.md "Success".
    ``dns`` False: no ``dns`` key (the runtime keeps its own resolver: Garden writes the
    result's nameservers into the container's resolv.conf, and OVN at the gateway answers
    only the hub's names, not the platform's)."""
    old = version in ("0.3.0", "0.3.1", "0.4.0")
    host: dict[str, Any] = {"name": a.dev}
    if host_mac:
        host["mac"] = host_mac
    ips: list[dict[str, Any]] = []
    gw = ipaddress.ip_address(a.gateway) if a.gateway else None
    for addr in a.addrs:
        iface = ipaddress.ip_interface(addr)
        entry: dict[str, Any] = {"address": addr, "interface": 1}
        if old:
            entry = {"version": str(iface.version), **entry}
        if gw is not None and gw.version == iface.version:
            entry["gateway"] = str(gw)
        ips.append(entry)
    out: dict[str, Any] = {
        "cniVersion": version,
        "interfaces": [host, {"name": a.ifname, "mac": a.mac, "sandbox": a.netns_path}],
        "ips": ips,
    }
    if gw is not None:
        out["routes"] = [{"dst": "0.0.0.0/0" if gw.version == 4 else "::/0", "gw": str(gw)}]
        if dns:
            out["dns"] = {"nameservers": [str(gw)], **({"search": search} if search else {})}
    return out


def check(a: Attachment, have: LinkState | None, prev: dict[str, Any] | None) -> list[str]:
    """CHECK: every way ``have`` (the kernel's view of the sandbox interface) and
    ``prev`` (the runtime's prevResult) differ from the attachment; empty = fine."""
    problems: list[str] = []
    if have is None:
        return [f"interface {a.ifname} is gone from {a.netns_path}"]
    if have.mac.lower() != a.mac.lower():
        problems.append(f"{a.ifname} has MAC {have.mac}, plugged with {a.mac}")
    missing = sorted(set(a.addrs) - set(have.addrs))
    if missing:
        problems.append(f"{a.ifname} lacks {', '.join(missing)} (has {', '.join(have.addrs) or 'no address'})")
    if not have.up:
        problems.append(f"{a.ifname} is down")
    if a.gateway and a.gateway not in have.gateways:
        problems.append(f"no default route via {a.gateway} on {a.ifname}")
    if prev:
        want = {i.get("address") for i in prev.get("ips", []) if isinstance(i, dict)}
        if want and want != set(a.addrs):
            problems.append(f"prevResult says {', '.join(sorted(str(w) for w in want))}, NB says {', '.join(a.addrs)}")
        names = {i.get("name") for i in prev.get("interfaces", []) if isinstance(i, dict) and i.get("sandbox")}
        if names and a.ifname not in names:
            problems.append(f"prevResult has no sandbox interface {a.ifname}")
    return problems
