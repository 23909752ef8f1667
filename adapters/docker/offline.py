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
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from adapters.docker.normalize import (
    event_action,
    event_container_id,
    normalize_container,
    normalize_network,
    parse_stream,
)
from core.model import Delete, Endpoint, Invalid, Network, Source


def _one(item: Any, source: Source) -> Iterator[Endpoint | Network | Delete | Invalid]:
    if not isinstance(item, dict):
        yield Invalid("not-object", f"payload item is {type(item).__name__}, expected an object")
        return
    try:
        if "Type" in item and "Action" in item:
            action = event_action(item)
            if item["Type"] == "network":
                attrs = (item.get("Actor") or {}).get("Attributes") or {}
                net = attrs.get("name")
                cid = event_container_id(item)
                if action == "disconnect" and isinstance(net, str) and cid:
                    yield Delete(source=source, kind="endpoint", key=f"{net}/{cid}")
                elif action == "destroy" and isinstance(net, str):
                    yield Delete(source=source, kind="network", key=net)
            return
        if "IPAM" in item or ("Driver" in item and "Containers" in item):
            net_obj = normalize_network(item, source)
            if net_obj is not None:
                yield net_obj
            return
        if "Id" in item or "NetworkSettings" in item or "State" in item:
            yield from normalize_container(item, source)
            return
        yield Invalid("unknown-payload", "object is neither a container inspect, a network inspect nor an event")
    except Invalid as exc:
        yield exc


def normalize_text(text: str, source: Source) -> Iterator[Endpoint | Network | Delete | Invalid]:
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
        for item in items:
            yield from _one(item, source)
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
                yield from _one(ev, source)
        return
    yield from _one(obj, source)
    rest = text[end:].strip()
    while rest:
        try:
            obj, end = decoder.raw_decode(rest)
        except (json.JSONDecodeError, RecursionError) as exc:
            yield Invalid("bad-json", f"trailing data is not JSON: {exc}")
            return
        yield from _one(obj, source)
        rest = rest[end:].strip()
