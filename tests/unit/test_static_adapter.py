"""The static adapter and a writer caught in the middle of its last line: the
objects of that line are not deleted for a poll, and a line that stays cut is
rejected one poll later."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from adapters.static import StaticAdapter
from core.adapter import AdapterSpec
from core.model import Endpoint, Network, Rejected, Snapshot, Source, encode

SRC = Source("static", "lab")
NET = Network(source=SRC, name="net0", subnets=("10.100.0.0/24",))


def ep(uid: str, ip: str) -> Endpoint:
    return Endpoint(source=SRC, uid=uid, namespace="lab", name=uid, kind="vm", network="net0", ips=(ip,))


class Sink:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def emit(self, ev: Any) -> None:
        self.events.append(ev)

    def snapshots(self) -> list[set[str]]:
        return [{o.key for o in e.objects} for e in self.events if isinstance(e, Snapshot)]


async def until(pred: Any) -> None:
    async with asyncio.timeout(10):
        while not pred():
            await asyncio.sleep(0.005)


async def run_with(adapter: StaticAdapter, sink: Sink, body: Any) -> None:
    task = asyncio.create_task(adapter.run(sink))
    try:
        await body()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_last_line_caught_mid_write_deletes_nothing(tmpdir_short: Path) -> None:
    path = tmpdir_short / "objs.jsonl"
    whole = b"".join(encode(o) + b"\n" for o in (NET, ep("a", "10.100.0.2"), ep("b", "10.100.0.3")))
    path.write_bytes(whole)
    adapter = StaticAdapter(AdapterSpec(name="lab", type="static", cluster="lab",
                                        options={"path": str(path), "poll_interval": 0.01}))  # fmt: skip
    sink = Sink()
    torn_reads = [0]
    read = adapter.read

    def read_then_finish() -> Any:
        out = read()
        if adapter.torn:
            torn_reads[0] += 1
            path.write_bytes(whole + encode(ep("c", "10.100.0.4")) + b"\n")  # the writer finishes
        return out

    adapter.read = read_then_finish  # type: ignore[method-assign]

    async def body() -> None:
        await until(lambda: len(sink.snapshots()) == 1)
        last = encode(ep("b", "10.100.0.3")) + b"\n"  # rewritten in place, not atomically: b's line by half
        path.write_bytes(whole[: len(whole) - len(last) // 2 - 1])
        await until(lambda: "net0/c" in sink.snapshots()[-1])

    await run_with(adapter, sink, body)
    assert torn_reads[0] == 1
    assert all({"net0", "net0/a", "net0/b"} <= s for s in sink.snapshots()), sink.snapshots()
    assert not [e for e in sink.events if isinstance(e, Rejected)]


async def test_a_line_that_stays_cut_is_rejected_a_poll_later(tmpdir_short: Path) -> None:
    path = tmpdir_short / "objs.jsonl"
    line = encode(ep("b", "10.100.0.3"))
    path.write_bytes(encode(NET) + b"\n" + encode(ep("a", "10.100.0.2")) + b"\n" + line[: len(line) // 2])
    adapter = StaticAdapter(AdapterSpec(name="lab", type="static", cluster="lab",
                                        options={"path": str(path), "poll_interval": 0.01}))  # fmt: skip
    sink = Sink()

    async def body() -> None:
        await until(lambda: sink.snapshots())

    await run_with(adapter, sink, body)
    assert sink.snapshots()[0] == {"net0", "net0/a"}
    (rej,) = [e for e in sink.events if isinstance(e, Rejected)]
    assert rej.reason == "bad-json" and rej.ref.endswith(":3")
