"""OVS Interfaces on the integration bridge, through ovsdbapp.

An attachment's host end becomes a Port/Interface on the bridge with
``external_ids:iface-id=<logical port>`` (ovn-controller binds it) plus the
attachment's record (:meth:`Attachment.ids`).  ovsdbapp is blocking and keeps
a connection thread; every call here runs in a worker thread
(``asyncio.to_thread``) so the event loop never waits on ovs-vswitchd.

:class:`FakeBridge` keeps the same contract in a dict, for unit tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Protocol

from core.names import OWNER
from core.ovsdb import Tls

from .attachment import Attachment
from .link import PlumbError

__all__ = ["Bridge", "FakeBridge", "OvsBridge"]


#: how long a close waits for the Open_vSwitch connection's queued transactions
STOP_TIMEOUT = 3.0

class Bridge(Protocol):
    """What the reconciler needs from the bridge."""

    #: The bridge uses the userspace datapath (veths need TX checksum offload off); known after connect.
    netdev: bool

    async def owned(self, owner: str) -> dict[str, dict[str, str]]:
        """Interface name → external_ids, for every Interface tagged ``ovn-hub:owner=<owner>``."""
        ...

    async def add(self, a: Attachment, owner: str) -> None:
        """Put the host end of ``a`` on the bridge with its record (replacing a stale one)."""
        ...

    async def delete(self, dev: str) -> None:
        """Remove the Interface ``dev``; absent is fine."""
        ...


def ssl_files(tls: Tls | None) -> None:
    """Give OVS's stream-ssl (the Python IDL under ovsdbapp) the TLS files of an
    ``ssl:`` remote.  They are process-wide in OVS; a missing one is a PlumbError
    naming the ``[ovn]`` key."""
    from ovs.stream import Stream  # type: ignore[import-untyped]

    if tls is None or not (tls.private_key and tls.certificate and tls.ca_cert):
        raise PlumbError("node.ovs is an ssl: remote: set ovn.private_key, ovn.certificate and ovn.ca_cert")
    Stream.ssl_set_private_key_file(tls.private_key)
    Stream.ssl_set_certificate_file(tls.certificate)
    Stream.ssl_set_ca_cert_file(tls.ca_cert)


class OvsBridge:
    """The Open_vSwitch database of this host (ovsdbapp's IDL, in threads)."""

    def __init__(self, remote: str, bridge: str, *, tls: Tls | None = None) -> None:
        self.remote = remote
        self.bridge = bridge
        #: the key, certificate and CA of an ``ssl:`` remote (OVS's stream-ssl: set once per process)
        self.tls = tls
        self.netdev = False
        self.system_id = ""  # Open_vSwitch external_ids:system-id, read by connect()
        self._api: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()  # wrapper mode and the CNI agent share one bridge (one connection)

    async def connect(self) -> None:
        """Connect (once per process: ovsdbapp keeps it), read the system-id, check the bridge."""
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        with self._lock:
            self._connect_locked()

    def _connect_locked(self) -> None:
        from ovsdbapp.backend.ovs_idl import connection  # type: ignore[import-untyped]
        from ovsdbapp.schema.open_vswitch import impl_idl  # type: ignore[import-untyped]

        if self._api is None:
            if self._conn is None:
                if self.remote.startswith("ssl:"):
                    ssl_files(self.tls)
                idl = connection.OvsdbIdl.from_server(self.remote, "Open_vSwitch")
                self._conn = connection.Connection(idl=idl, timeout=10)
            # starts the connection thread (ovsdbapp keeps the connection on the class: one per process)
            self._api = impl_idl.OvsdbIdl(self._conn)
        api = self._api
        ids = api.db_get("Open_vSwitch", ".", "external_ids").execute(check_error=True)
        self.system_id = ids.get("system-id", "") if isinstance(ids, dict) else ""
        if not api.br_exists(self.bridge).execute(check_error=True):
            raise PlumbError(f"bridge {self.bridge} does not exist (is ovn-controller running?)")
        dp = api.db_get("Bridge", self.bridge, "datapath_type").execute(check_error=True)
        self.netdev = dp == "netdev"

    async def owned(self, owner: str) -> dict[str, dict[str, str]]:
        return await asyncio.to_thread(self._owned, owner)

    def _owned(self, owner: str) -> dict[str, dict[str, str]]:
        rows = self._api.db_list_rows("Interface").execute(check_error=True)
        return {row.name: dict(row.external_ids) for row in rows if row.external_ids.get(OWNER) == owner}

    async def add(self, a: Attachment, owner: str) -> None:
        await asyncio.to_thread(self._add, a, owner)

    def _add(self, a: Attachment, owner: str) -> None:
        api = self._api
        with api.transaction(check_error=True) as txn:
            txn.add(api.del_port(a.dev, if_exists=True))
            txn.add(api.add_port(self.bridge, a.dev))
            txn.add(api.db_set("Interface", a.dev, ("external_ids", a.ids(owner))))

    async def delete(self, dev: str) -> None:
        await asyncio.to_thread(self._delete, dev)

    def _delete(self, dev: str) -> None:
        self._api.del_port(dev, if_exists=True).execute(check_error=True)

    async def close(self) -> None:
        """Stop the Open_vSwitch connection.  Its thread is a daemon and is
        stopped from a daemon thread too, so a transaction stuck waiting for
        ovs-vswitchd can delay this call (the caller bounds it) but never the
        process exit."""
        conn, self._conn, self._api = self._conn, None, None
        if conn is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def stop() -> None:
            # ovsdbapp's stop() lets the queued transactions run first (each may wait up to its
            # timeout for ovs-vswitchd): bound the wait; what they leave undone is level-triggered
            # state the next start's reconciliation repairs
            with contextlib.suppress(Exception):
                conn.stop(timeout=STOP_TIMEOUT)
            loop.call_soon_threadsafe(finish)

        threading.Thread(target=stop, name="ovs-close", daemon=True).start()
        await done


class FakeBridge:
    """The bridge in a dict: ``interfaces[name]`` is its external_ids.

    ``fail(dev, exc)`` makes the next ``add`` of ``dev`` raise ``exc``;
    ``calls`` records every mutating operation, in order."""

    def __init__(self, *, netdev: bool = True) -> None:
        self.netdev = netdev
        self.interfaces: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []
        self._fail: dict[str, list[BaseException]] = {}

    def fail(self, dev: str, exc: BaseException, times: int = 1) -> None:
        self._fail.setdefault(dev, []).extend([exc] * times)

    async def owned(self, owner: str) -> dict[str, dict[str, str]]:
        await asyncio.sleep(0)
        return {n: dict(ids) for n, ids in self.interfaces.items() if ids.get(OWNER) == owner}

    async def add(self, a: Attachment, owner: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("add", a.dev))
        errors = self._fail.get(a.dev)
        if errors:
            raise errors.pop(0)
        self.interfaces[a.dev] = a.ids(owner)

    async def delete(self, dev: str) -> None:
        await asyncio.sleep(0)
        self.calls.append(("delete", dev))
        self.interfaces.pop(dev, None)
