"""The static adapter: canonical objects from a JSON-lines file.

For endpoints no orchestrator knows (VMs, appliances), for trying the hub, and
for the tests and benchmarks.  Each line is one canonical object (the JSON of
:class:`core.model.Network` or :class:`core.model.Endpoint`, with ``type``).
The file is re-read when its mtime or size changes; every read is a Snapshot.
A bad line is rejected with its line number and the rest still applies: any
bytes at all (not UTF-8, not JSON, nested too deeply, too long, an object
with the same key as an earlier line) cost that line only.  A missing file is
an error (the hub restarts the adapter with backoff).  A file whose last line is
unterminated and does not decode is taken as caught mid-write: it is read again
at the next poll, and only if it is still the same is that line rejected (a
writer that does not replace the file atomically must not delete the objects of
its last line for a poll).

It is also the smallest complete example of an adapter.
"""

from __future__ import annotations

import asyncio
import os
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import msgspec

from core.adapter import Adapter, AdapterSpec, EventSink, parse_options, unique
from core.gcpause import gc_paused
from core.model import (
    LIMITS,
    Endpoint,
    Invalid,
    Object,
    Rejected,
    Snapshot,
    Source,
    decode_object,
    share_names,
    validate,
)


def _share(ep: Endpoint, src: Source, names: dict[str, str]) -> None:
    """One copy of what endpoints repeat (the source; namespace, kind, network,
    node, state and empty labels by :func:`core.model.share_names`), in place,
    as each line is decoded.  The desired state would share them anyway, but
    only after the whole file is read: 50k endpoints' copies, ~6 small objects
    each, would then be freed among the objects kept, and pymalloc keeps such
    holes (~15 MB at 50k).  Freed here, the next line's decode reuses them."""
    msgspec.structs.force_setattr(ep, "source", src)  # (equal: checked before)
    share_names(ep, names)


class StaticOptions(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: str
    poll_interval: float = 1.0


class _Refs(Sequence[str]):
    """``path:line`` of each object read, made only when asked (a duplicate):
    50k strings made for nothing would be freed between the objects kept."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lines = array("L")

    def __len__(self) -> int:
        return len(self.lines)

    def at(self, line: int) -> str:
        return f"{self.path}:{line}"

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [f"{self.path}:{n}" for n in self.lines[i]]
        return f"{self.path}:{self.lines[i]}"


class StaticAdapter:
    """Every read is a whole Snapshot, so the adapter keeps no objects of its
    own between reads (no :class:`~core.adapter.ObjectCache`: the desired
    state holds them; the cache would cost ~0.2 KB an object)."""

    def __init__(self, spec: AdapterSpec) -> None:
        self.spec = spec
        self.opts = parse_options(spec, StaticOptions)
        self.log = spec.logger()
        #: The last read() ended in an unterminated line it rejected (a write in progress?).
        self.torn = False

    def read(self) -> tuple[list[Object], list[Rejected]]:
        objects: list[Object] = []
        rejected: list[Rejected] = []
        src = self.spec.source
        limit = LIMITS["object_bytes"]
        self.torn = False
        # decoding makes only acyclic objects (Structs of strings, tuples, dicts of strings): the cyclic GC
        # would walk every object read so far, again and again, for nothing
        path = self.opts.path
        refs = _Refs(path)
        names: dict[str, str] = {}
        with gc_paused(), open(path, "rb") as fh:
            readline = fh.readline
            n = 0
            while True:
                line = readline(limit + 1)
                if not line:
                    break
                self.torn = False
                n += 1
                if len(line) > limit and not line.endswith(b"\n"):
                    while line and not line.endswith(b"\n"):  # skip the rest of an over-long line
                        line = readline(limit + 1)
                    rejected.append(
                        Rejected(
                            source=src,
                            reason="too-long",
                            message=f"line {n}: longer than {limit} bytes",
                            ref=refs.at(n),
                        )
                    )
                    continue
                if line.isspace():  # = not line.strip() for a non-empty line, without copying it
                    continue
                try:
                    obj = decode_object(line)
                    if obj.source != src:
                        raise Invalid("wrong-source", f"object source {obj.source} is not this adapter's {src}")
                    validate(obj)
                    if isinstance(obj, Endpoint):
                        _share(obj, src, names)
                    objects.append(obj)
                    refs.lines.append(n)
                except Invalid as exc:
                    rejected.append(Rejected(source=src, reason=exc.reason, message=f"line {n}: {exc}", ref=refs.at(n)))
                    self.torn = not line.endswith(b"\n")
            objects, dups = unique(objects, src, refs)
        return objects, rejected + dups

    async def run(self, sink: EventSink) -> None:
        last: tuple[float, int] | None = None
        torn: tuple[float, int] | None = None  # a file that looked caught mid-write, once
        while True:
            st = os.stat(self.opts.path)  # a missing file raises: the hub restarts us with backoff
            stamp = (st.st_mtime, st.st_size)
            if stamp != last:
                objects, rejected = await asyncio.to_thread(self.read)
                if self.torn and stamp != torn:
                    torn = stamp  # look again at the next poll: the writer may not be done
                    await asyncio.sleep(self.opts.poll_interval)
                    continue
                for r in rejected:
                    await sink.emit(r)
                # (unique() left one object per kind and key, as ObjectCache.snapshot would)
                count = len(objects)
                snapshot = Snapshot(source=self.spec.source, objects=tuple(objects))
                objects.clear()
                await sink.emit(snapshot)
                del snapshot  # (the consumer holds it as long as it needs it)
                if last is None:
                    self.log.info("loaded %d objects from %s", count, self.opts.path)
                last = stamp
            await asyncio.sleep(self.opts.poll_interval)


def create(spec: AdapterSpec) -> Adapter:
    adapter = StaticAdapter(spec)
    if not Path(adapter.opts.path).is_absolute():
        raise ValueError(f"adapters.{spec.name}.path: must be an absolute path")
    return adapter
