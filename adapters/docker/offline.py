"""``hubctl normalize --from docker``: raw Docker payloads from files → canonical.

Accepts, in one file: a container inspect object, an array of them (the
``docker inspect`` CLI form), network inspect objects or arrays, or a captured
``GET /events`` body (compact JSON lines or concatenated pretty-printed
objects).  Yields canonical objects / events, or an :class:`Invalid` for each
bad piece (the caller prints it and goes on).

An events stream yields the canonical deltas an event implies by itself: a
network ``disconnect`` deletes that attachment's endpoint, a network
``destroy`` deletes the network.  Container lifecycle events carry no
addresses (the adapter re-inspects the container), so they yield nothing, but
every line is still validated.

Every input object that yields no canonical object and no Invalid is reported
to ``on_skip(reason, message)`` when given (``hubctl normalize`` prints one
line each): a container that is not running (``not-running``), runs with host
networking (``host-network``) or ``--network none`` without a wrapper-mode
label (``no-attachment``), or has no attachment with an address
(``no-address``); a ``host``/``none``/``null`` network (``not-l2``); an event
that implies nothing by itself (``event-only``: container lifecycle events,
network create/connect, other types); an empty array or file with no object
(``empty``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from adapters.docker.normalize import (
    LABEL_NETWORK,
    event_action,
    event_container_id,
    normalize_container,
    normalize_network,
    parse_stream,
)
from core.model import Delete, Endpoint, Invalid, Network, Source

#: ``on_skip(reason, message)``: an input object that yields no canonical object.
OnSkip = Callable[[str, str], None]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _container_skip(item: dict[str, Any]) -> tuple[str, str]:
    """Why a (valid) container inspect yields no endpoint (mirrors normalize_container)."""
    cid = str(item.get("Id", item.get("ID", "")))[:12]
    name = str(item.get("Name") or "").removeprefix("/")
    ref = f"container {cid}" + (f" ({name})" if name else "")
    state = _dict(item.get("State"))
    status = state.get("Status") or ("running" if state.get("Running") else "exited")
    running = state.get("Running")
    if running is False or (running is None and status not in ("running", "paused")):
        return "not-running", f"{ref}: not running (status {status}): no attachment to map"
    mode = _dict(item.get("HostConfig")).get("NetworkMode")
    nets = _dict(_dict(item.get("NetworkSettings")).get("Networks"))
    if mode == "host" or list(nets) == ["host"]:
        return "host-network", f"{ref}: runs with host networking (no attachment of its own)"
    if mode == "none":
        return "no-attachment", f"{ref}: runs with --network none and no {LABEL_NETWORK} label (no attachment)"
    mapped = [n for n in nets if n not in ("host", "none")]
    if not mapped:
        return "no-attachment", f"{ref}: is attached to no network"
    return "no-address", f"{ref}: no attachment has an IP address yet ({', '.join(sorted(mapped))[:200]})"


def _one(item: Any, source: Source, on_skip: OnSkip | None) -> Iterator[Endpoint | Network | Delete | Invalid]:
    if not isinstance(item, dict):
        yield Invalid("not-object", f"payload item is {type(item).__name__}, expected an object")
        return
    skip: tuple[str, str] | None = None
    try:
        if "Type" in item and "Action" in item:
            action = event_action(item)
            attrs = _dict(_dict(item.get("Actor")).get("Attributes"))
            if item["Type"] == "network":
                net = attrs.get("name")
                cid = event_container_id(item)
                if action == "disconnect" and isinstance(net, str) and cid:
                    yield Delete(source=source, kind="endpoint", key=f"{net}/{cid}")
                    return
                if action == "destroy" and isinstance(net, str):
                    yield Delete(source=source, kind="network", key=net)
                    return
                what = f"network {action} event" + (f" ({net})" if isinstance(net, str) else "")
                skip = ("event-only", f"{what}: implies no change by itself (hubd inspects the network or container)")
            elif item["Type"] == "container":
                cid = event_container_id(item) or ""
                skip = (
                    "event-only",
                    f"container {action} event ({cid[:12]}): carries no addresses (hubd re-inspects the container)",
                )
            else:
                skip = ("event-only", f"{str(item['Type'])[:40]} {action} event: not a container or network event")
        elif "IPAM" in item or ("Driver" in item and "Containers" in item):
            net_obj = normalize_network(item, source)
            if net_obj is not None:
                yield net_obj
                return
            skip = (
                "not-l2",
                f"network {item.get('Name')!r} (driver {item.get('Driver')}): not an L2 domain the hub programs",
            )
        elif "Id" in item or "NetworkSettings" in item or "State" in item:
            endpoints = normalize_container(item, source)
            yield from endpoints
            if endpoints:
                return
            skip = _container_skip(item)
        else:
            yield Invalid("unknown-payload", "object is neither a container inspect, a network inspect nor an event")
            return
    except Invalid as exc:
        yield exc
        return
    if on_skip is not None:
        on_skip(*skip)


def normalize_text(
    text: str, source: Source, *, on_skip: OnSkip | None = None
) -> Iterator[Endpoint | Network | Delete | Invalid]:
    """Offline normalizer (entry point ``ovn_hub.normalizers``: ``docker``); see
    the module docstring for ``on_skip``."""
    stripped = text.lstrip()
    if not stripped:
        yield Invalid("empty", "file is empty")
        return
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Invalid("bad-json", f"not JSON: {exc}")
            return
        if not items and on_skip is not None:
            on_skip("empty", "an empty array: no object")
        for item in items:
            yield from _one(item, source, on_skip)
        return
    # one object, or a stream of them (events); parse_stream validates events,
    # so objects that are not events are decoded here one by one instead.
    decoder = json.JSONDecoder()
    pos = len(text) - len(stripped)
    try:
        obj, end = decoder.raw_decode(text, pos)
    except (json.JSONDecodeError, RecursionError) as exc:
        yield Invalid("bad-json", f"not JSON: {exc}")
        return
    if isinstance(obj, dict) and "Type" in obj and "Action" in obj:
        for ev in parse_stream(text):
            if isinstance(ev, Invalid):
                yield ev
            else:
                yield from _one(ev, source, on_skip)
        return
    yield from _one(obj, source, on_skip)
    rest = text[end:].strip()
    while rest:
        try:
            obj, end = decoder.raw_decode(rest)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Invalid("bad-json", f"trailing data is not JSON: {exc}")
            return
        yield from _one(obj, source, on_skip)
        rest = rest[end:].strip()
