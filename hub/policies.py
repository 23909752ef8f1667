"""The hub-level policies file (``[policies] path``): a JSON array of AdminPolicy
objects (core/model/fabric.py; packaging/policies.json.example), in force above
every orchestrator's own policies (core/nb/tables/admin_policy.py).

Semantics, as the Docker adapter's policies file: the file is looked at every
``poll_interval`` seconds (and at once on SIGHUP) and re-read when its mtime,
size or inode changed.  A file that cannot be read, is not JSON, has an
unknown key or a value of the wrong type, or fails validation (names, unique
names and priorities 0-999, selectors, peers, ports) is **rejected**: the
reason is logged at error, published as a Rejected of source ``ovn-hub/fabric``
(counted once per distinct file content and reason in
``ovn_hub_rejected_total``, hub/rejections.py) and kept for ``/v1/status``;
the policies last read successfully stay in force.  An unchanged bad (or
missing) file is rejected once, not at every look.

At start there is no "last good" file: hubd refuses to start with a bad one
(``hubd --check`` says why), so a restart never removes policies NB holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from core import metrics
from core.model import Invalid, Rejected
from core.model.fabric import FABRIC_SOURCE, AdminPolicy, decode_admin_policies
from hub.config import PoliciesSection

log = logging.getLogger("ovn_hub.policies")

Reject = Callable[[Rejected], Awaitable[None]]
Apply = Callable[[tuple[AdminPolicy, ...]], None]


def load_policies_file(path: str) -> tuple[AdminPolicy, ...]:
    """Read and decode one policies file; :class:`Invalid` names the first problem."""
    origin = f"policies file {path}"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise Invalid("policies-file", f"{origin}: {exc.strerror or exc}") from None
    return decode_admin_policies(data, origin)


class PoliciesFile:
    """The ``[policies]`` file, its policies in force and why the file on disk is not (if it is not)."""

    def __init__(self, section: PoliciesSection, reject: Reject | None = None) -> None:
        self.section = section
        self.reject = reject
        #: the policies in force: the file as last read successfully (none before)
        self.policies: tuple[AdminPolicy, ...] = ()
        #: why the file as it is now is not in force ("": it is)
        self.error = ""
        self.reason = ""
        #: looks at the file (tests wait on it), and good reads
        self.checks = 0
        self.loads = 0
        self._stamp: tuple[int, int, int] | None = None
        self._looked = False
        self._pending: Rejected | None = None
        self._kick = asyncio.Event()

    @property
    def path(self) -> str:
        return self.section.path

    def read(self) -> bool:
        """Look at the file; True if new policies are now in force.  A bad file
        leaves them as they were and queues one Rejected (see :meth:`run`)."""
        self.checks += 1
        if not self.path:
            changed = bool(self.policies) or not self._looked
            self._looked, self.policies, self.error, self.reason = True, (), "", ""
            metrics.HUB_POLICIES.set(0)
            return changed
        try:
            st = os.stat(self.path)
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if self._looked and stamp == self._stamp:
            return False  # unchanged: a bad or missing file is rejected once, not at every look
        self._looked, self._stamp = True, stamp
        try:
            policies = load_policies_file(self.path)
        except Invalid as exc:
            self.error, self.reason = str(exc), exc.reason
            kept = f"the {len(self.policies)} policies last read stay in force" if self.loads else "no hub-level policy is in force"
            log.error("%s (%s); %s", exc, exc.reason, kept)
            self._pending = Rejected(source=FABRIC_SOURCE, reason=exc.reason, message=str(exc), ref=self.path)
            return False
        self.error, self.reason = "", ""
        self.loads += 1
        changed = policies != self.policies
        self.policies = policies
        metrics.HUB_POLICIES.set(len(policies))
        log.info("policies file %s: %d hub-level policies%s", self.path, len(policies), "" if changed else " (unchanged)")
        return changed

    def configure(self, section: PoliciesSection) -> None:
        """A reloaded ``[policies]`` section: a new path is read at the next look (at once)."""
        if section.path != self.section.path:
            self._stamp, self._looked = None, False
        self.section = section
        self.kick()

    def kick(self) -> None:
        """Look at the file now (SIGHUP)."""
        self._kick.set()

    async def publish_rejection(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and self.reject is not None:
            await self.reject(pending)

    async def run(self, apply: Apply) -> None:
        """Look at the file every ``poll_interval`` seconds (or when kicked); ``apply``
        the policies whenever a good read changed them."""
        await self.publish_rejection()  # one queued by the read at start
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.section.poll_interval):
                    await self._kick.wait()
            self._kick.clear()
            try:
                if self.read():
                    apply(self.policies)
                await self.publish_rejection()
            except Exception:  # never let the watcher die silently
                log.exception("policies file %s: reload failed", self.path)

    def status(self) -> dict[str, Any]:
        return {"path": self.path, "policies": len(self.policies), "error": self.error, "reason": self.reason}
