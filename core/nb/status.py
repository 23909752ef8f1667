"""What the hub may ask the programmer (``/v1/status``, ``hubctl``, the MQTT mirror, ``hubctl trace``)."""

from __future__ import annotations

from typing import Any

import msgspec


class PortStatus(msgspec.Struct, frozen=True):
    """One port as the hub sees it: committed and equal to desired, OVN's
    ``up``, and NB's refusal (None when it was not refused)."""

    programmed: bool
    up: bool | None
    error: str | None


class NbStatus(msgspec.Struct, frozen=True):
    """The writer's state for ``/v1/status`` and ``hubctl status``."""

    remote: str
    connected: bool
    switches: int
    ports: int
    endpoints: int
    dirty: int
    #: rows NB refused, retried every retry_interval: the first 50 (failed_count has them all)
    failed: dict[str, str]
    failed_count: int
    transactions: int
    #: how the last (re)connect loaded the ports: from the restart cache, or read whole
    ports_from_cache: int
    ports_read: int
    #: sessions lost inside a transaction (the batch was committed apart)
    session_drops: int
    #: reconnects whose port replica was revalidated by _uuid/_version, or read whole
    reconnect_loads: dict[str, int]
    #: "active" (holds the hub's NB lock and writes), "standby" or "paused"
    role: str = "active"
    #: times this writer took over after having been active before (standby → active)
    takeovers: int = 0
    #: the cluster member in use and its raft index at connect ("" / None: a standalone NB)
    member: str = ""
    #: how the last (re)connect loaded the ports: "port cache, NB history" (NB's transaction
    #: history since the cache), "port cache" (versions checked), "in memory", "read" (every port)
    ports_load: str = ""


class RouterStatus(msgspec.Struct, frozen=True):
    name: str
    #: the switches of the networks it joins
    networks: list[str]
    external: str


class FabricStatus(msgspec.Struct, frozen=True):
    """The fabric as the programmer derives it (``hubctl status``)."""

    routers: list[RouterStatus]
    #: networks a router could not take (an overlapping subnet), and why
    problems: list[str]
    #: every expected source has listed: the fabric's rows may be collected
    collecting: bool
    #: the hub's rows per fabric table, in NB
    rows: dict[str, int]


class RouterPort(msgspec.Struct, frozen=True):
    """A network's leg on its router (``hubctl trace``: the first hop off the switch)."""

    router: str  # Logical_Router name
    name: str  # Logical_Router_Port name
    mac: str
    #: ``gateway/prefixlen`` per subnet of the network
    networks: tuple[str, ...]


class NbRow(msgspec.Struct, frozen=True):
    """One of the hub's rows as its replica holds it (``hubctl trace`` maps a
    logical flow's ``stage-hint``, the first 8 hex digits of an NB uuid, to it)."""

    table: str
    key: str
    uuid: str
    columns: dict[str, Any]
