"""``bench normalize``: the Docker adapter's events and the static file, normalized on one core.

Kubernetes watch events (``bench k8s --parts normalize``), Cloud Foundry LRP
events (``bench cloudfoundry --parts decode``) and Mesos operator events
(``bench mesos --parts parse_normalize``) have their own benches; this one
measures the two adapters that had none.  Each part alternates the adapter's
path with its baselines over ``--rounds`` rounds, pinned to one CPU; rates are
per CPU-second and per wall second (:mod:`bench.normrate`), medians count.

* ``docker``  ``--events`` container ``start`` events (the deck-chores compose
              fixture's event line) of distinct containers, each with its
              ``docker inspect`` (the compose-redis fixture: a running container
              on one compose network, compose labels, an exposed port), name,
              id, IP and MAC varied.  ``parse_normalize`` is the adapter's own
              code per event, without the inspect request: ``container_event``
              (the usual container event, typed; else ``parse_event_line``,
              ``event_key``, ``event_container_id``), the de-duplication set,
              then the inspect body as ``DockerAdapter.sync_container`` takes it
              (``decode_inspect``: typed msgspec, the fields the endpoints need;
              ``normalize_inspect``; the dict path for what they decline).
              ``parse_normalize_predecoded`` is the same without decoding the
              inspect (its :class:`Inspect` decoded beforehand, kept for all
              events), ``parse_normalize_dict`` the dict path with the inspect
              decoded beforehand by ``json.loads`` (what the adapter did before
              it read the body itself: aiodocker decoded it), and
              ``parse_decode_normalize`` that dict path with the ``json.loads``
              of each body (what the adapter's process paid per event then).
              Baselines: bare ``msgspec`` decode of the event line, and of the
              event line and the inspect body.
* ``static``  a JSON-lines file of ``--objects`` canonical objects (one Network,
              the rest Endpoints with labels, two ports, IP and MAC) read by the
              real ``StaticAdapter.read`` (readline, ``decode_object``, source
              check, ``validate``, duplicates).  Baselines: bare ``msgspec``
              decode (untyped) of the same lines, each dropped at once, and
              the typed decode of every line into one list (the objects kept,
              as any reader of the file must: allocation and the cyclic GC
              cost as much as the decode).

Target: >= 100,000 events (objects) per CPU-second for each.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from adapters.docker.normalize import (
    container_event,
    decode_inspect,
    event_container_id,
    event_key,
    normalize_container,
    normalize_inspect,
    parse_event_line,
)
from adapters.static import StaticAdapter
from bench.bulk import _profile_report
from bench.common import emit, environment, log, short_tmpdir
from bench.k8s import one_core
from bench.normrate import Timing, rates_against
from core.adapter import AdapterSpec
from core.model import Endpoint, Network, PortSpec, Source, encode

TARGET = 100_000
DOCKER = Source("docker", "bench")
STATIC = Source("static", "bench")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "docker"


def _fixture_event() -> dict[str, Any]:
    for line in (FIXTURES / "events.compose-project.deck-chores.jsonl").read_text().splitlines():
        ev = json.loads(line)
        if ev.get("Type") == "container" and ev.get("Action") == "start":
            return dict(ev)
    raise RuntimeError("no container start event in the fixture")


def docker_inputs(n: int) -> tuple[list[bytes], list[bytes]]:
    """``n`` event lines and the inspect bodies of their containers (distinct ids, names, IPs, MACs)."""
    ev_t = _fixture_event()
    insp_t = json.loads((FIXTURES / "container-inspect.compose-redis.spring-boot.json").read_text())
    lines: list[bytes] = []
    bodies: list[bytes] = []
    for i in range(n):
        cid = f"{i:08x}" * 8
        name = f"redis-docker-redis-{i}"
        ev = copy.deepcopy(ev_t)
        ev.update(id=cid, time=1570389773 + i, timeNano=1570389773595226629 + i * 1000)
        ev["Actor"]["ID"] = cid
        ev["Actor"]["Attributes"]["name"] = name
        lines.append(json.dumps(ev, separators=(",", ":")).encode())
        insp = copy.deepcopy(insp_t)
        insp["Id"], insp["Name"] = cid, f"/{name}"
        net = insp["NetworkSettings"]["Networks"]["redis-docker_default"]
        net["IPAddress"] = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}"
        net["MacAddress"] = f"02:42:0a:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}"
        bodies.append(json.dumps(insp).encode())
    return lines, bodies


def run_docker(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    lines, bodies = docker_inputs(n)
    decoded = [json.loads(b) for b in bodies]  # what aiodocker hands the adapter
    log(f"docker: {n} events ({len(lines[0])} bytes) with inspects of {len(bodies[0])} bytes, {args.rounds} rounds")
    dec = msgspec.json.Decoder()

    typed = [insp for b in bodies if (insp := decode_inspect(b)) is not None]
    assert len(typed) == n

    def event(ev_line: bytes, seen: set[tuple[int, str, str, str]]) -> bool:
        fast = container_event(ev_line)  # DockerAdapter.handle_line: the usual container event, typed
        if fast is not None:
            if fast.key in seen:  # _first_time: de-duplication
                return False
            seen.add(fast.key)
            return bool(fast.container)
        ev = parse_event_line(ev_line)  # else the dict path
        key = event_key(ev)  # handle_event: de-duplication
        if key in seen:
            return False
        seen.add(key)
        return event_container_id(ev) is not None

    def from_body(body: bytes) -> list[Endpoint]:  # sync_container, after the inspect request
        insp = decode_inspect(body)
        eps = normalize_inspect(insp, DOCKER, node="node-1") if insp is not None else None
        return eps if eps is not None else normalize_container(json.loads(body), DOCKER, node="node-1")

    def parse_normalize() -> int:
        seen: set[tuple[int, str, str, str]] = set()
        return sum(len(from_body(body)) for line, body in zip(lines, bodies, strict=True) if event(line, seen))

    def parse_normalize_predecoded() -> int:
        seen: set[tuple[int, str, str, str]] = set()
        return sum(len(normalize_inspect(insp, DOCKER, node="node-1") or ())
                   for line, insp in zip(lines, typed, strict=True) if event(line, seen))  # fmt: skip

    def parse_normalize_dict() -> int:
        seen: set[tuple[int, str, str, str]] = set()
        return sum(len(normalize_container(insp, DOCKER, node="node-1"))
                   for line, insp in zip(lines, decoded, strict=True) if event(line, seen))  # fmt: skip

    def parse_decode_normalize() -> int:
        seen: set[tuple[int, str, str, str]] = set()
        return sum(len(normalize_container(json.loads(body), DOCKER, node="node-1"))
                   for line, body in zip(lines, bodies, strict=True) if event(line, seen))  # fmt: skip

    def msgspec_event() -> None:
        for line in lines:
            dec.decode(line)

    def msgspec_event_inspect() -> None:
        for line, body in zip(lines, bodies, strict=True):
            dec.decode(line)
            dec.decode(body)

    endpoints = parse_normalize()
    assert endpoints == n == parse_normalize_predecoded() == parse_normalize_dict(), endpoints
    variants: dict[str, Callable[[], object]] = {
        "parse_normalize": parse_normalize, "parse_normalize_predecoded": parse_normalize_predecoded,
        "parse_normalize_dict": parse_normalize_dict, "parse_decode_normalize": parse_decode_normalize,
        "baseline_msgspec_decode_event": msgspec_event, "baseline_msgspec_decode_event_and_inspect": msgspec_event_inspect,
    }  # fmt: skip
    return _alternate(n, variants, "parse_normalize", args) | {"endpoints": endpoints}


def static_file(path: Path, n: int) -> int:
    """A JSON-lines file of one Network and ``n - 1`` Endpoints; its size."""
    with open(path, "wb") as fh:
        fh.write(encode(Network(source=STATIC, name="vms", subnets=("10.0.0.0/8",))) + b"\n")
        for i in range(1, n):
            ep = Endpoint(source=STATIC, uid=f"vm-{i:06d}", namespace=f"tenant-{i % 20}", name=f"vm-{i}", kind="vm",
                          network="vms", node=f"host-{i % 50}", ips=(f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255 or 1}",),
                          mac=f"0a:58:0a:{(i >> 16) & 255:02x}:{(i >> 8) & 255:02x}:{i & 255:02x}",
                          labels={"app": f"app-{i % 100}", "tier": "backend", "env": "prod"},
                          ports=(PortSpec(22), PortSpec(443, "tcp", "https")))  # fmt: skip
            fh.write(encode(ep) + b"\n")
    return path.stat().st_size


def run_static(args: argparse.Namespace) -> dict[str, Any]:
    n = args.objects
    with short_tmpdir("hubnorm") as tmp:
        path = tmp / "objects.jsonl"
        size = static_file(path, n)
        log(f"static: {n} objects, {size / n:.0f} bytes a line, {args.rounds} rounds")
        adapter = StaticAdapter(AdapterSpec(name="bench", type="static", cluster="bench", options={"path": str(path)}))
        lines = path.read_bytes().splitlines()
        dec = msgspec.json.Decoder()
        typed = msgspec.json.Decoder(Network | Endpoint)

        def read() -> None:
            objects, rejected = adapter.read()
            assert len(objects) == n and not rejected, (len(objects), rejected[:1])

        def untyped() -> None:
            for line in lines:
                dec.decode(line)

        def typed_only() -> list[Network | Endpoint]:  # the objects kept, as a reader must
            return [typed.decode(line) for line in lines]

        variants: dict[str, Callable[[], object]] = {
            "read": read, "baseline_msgspec_decode": untyped, "baseline_msgspec_typed_decode": typed_only,
        }  # fmt: skip
        return _alternate(n, variants, "read", args) | {"line_bytes": round(size / n)}


def _alternate(n: int, variants: dict[str, Callable[[], object]], hub: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time every variant once per round (in order), over ``args.rounds`` rounds, on one core."""
    runs: dict[str, list[Timing]] = {name: [] for name in variants}
    with one_core() as cpu:
        for rnd in range(args.rounds):
            for name, fn in variants.items():
                c0, t0 = time.thread_time(), time.perf_counter()
                fn()
                runs[name].append((time.perf_counter() - t0, time.thread_time() - c0))
            log(f"  round {rnd + 1}/{args.rounds}: " + ", ".join(f"{k} {n / v[-1][1]:.0f}/cpu-s" for k, v in runs.items()))
        profile_top = None
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            variants[hub]()
            prof.disable()
            profile_top = _profile_report(prof, None, top=20)
    baselines = {name: t for name, t in runs.items() if name.startswith("baseline_")}
    out: dict[str, Any] = {"events": n, "cpu": cpu, "rounds": args.rounds}
    out |= rates_against(n, runs[hub], baselines)
    for name, t in runs.items():
        if name != hub and name not in baselines:
            out[name] = rates_against(n, t, {})
    out["target_events_per_cpu_second"] = TARGET
    out["target_met"] = out["events_per_cpu_second"] >= TARGET
    if profile_top is not None:
        out["profile_top_tottime"] = profile_top
    return out


def main(args: argparse.Namespace) -> int:
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - {"docker", "static"}
    if unknown:
        raise SystemExit(f"bench normalize: unknown --parts {sorted(unknown)}; choose from docker, static")
    t0 = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "normalize", "environment": environment()}
    if "docker" in parts:
        result["docker_events"] = run_docker(args)
    if "static" in parts:
        result["static_file"] = run_static(args)
    result["target_met"] = all(result[k]["target_met"] for k in ("docker_events", "static_file") if k in result)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    emit(result)
    return 0


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--parts", default="docker,static", help="comma-separated subset of docker,static")
    ap.add_argument("--events", type=int, default=50_000, help="docker: events (distinct containers)")
    ap.add_argument("--objects", type=int, default=100_000, help="static: objects in the file")
    ap.add_argument("--rounds", type=int, default=5, help="the variants alternate in this many rounds")
    ap.add_argument("--profile", action="store_true", help="cProfile one extra, uncounted run of the adapter's path")
