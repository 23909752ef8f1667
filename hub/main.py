"""``hubd`` entry point."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from pathlib import Path

from hub.config import DEFAULT_PATH, Config, ConfigError, RouterSection, load


def _logging(level: str) -> None:
    # journald adds timestamps; keep lines short and parseable.
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hubd", description="OVN Hub daemon: orchestrators → OVN Northbound")
    ap.add_argument(
        "--config", "-c", type=Path, default=None, help=f"TOML config (default {DEFAULT_PATH} if it exists)"
    )
    ap.add_argument("--sandbox", action="store_true", help="run a private OVN NB+SB+northd in the state dir")
    ap.add_argument("--check", action="store_true", help="validate the config (and adapter options) and exit")
    ap.add_argument(
        "--role",
        choices=("hub", "adapter", "node"),
        default="hub",
        help="hub (default): adapters → OVN NB; adapter: run only the adapters and publish their"
        " events to the [mqtt] broker for a remote hub (docs/bus.md); node: plug this host's"
        " Docker wrapper-mode containers and CNI attachments into br-int ([node], [cni], README)",
    )
    args = ap.parse_args(argv)
    path: Path | None = args.config
    if path is None and DEFAULT_PATH.exists():
        path = DEFAULT_PATH
    try:
        # no config file: the embedded defaults, one router joining every network that has a subnet
        cfg = load(path) if path is not None else Config(routers={"default": RouterSection()})
    except ConfigError as exc:
        print(f"hubd: config error: {exc}", file=sys.stderr)
        return 2
    _logging(cfg.hub.log_level)
    from hub.daemon import Hub

    hub = Hub(cfg, path, sandbox=args.sandbox)
    try:
        hub.validate_adapters(cfg)
    except ConfigError as exc:
        print(f"hubd: config error: {exc}", file=sys.stderr)
        return 2
    if args.role == "node":
        from hub.node import node_options, run_node

        try:
            node_options(cfg)
        except ConfigError as exc:
            print(f"hubd: config error: {exc}", file=sys.stderr)
            return 2
        if args.check:
            print("hubd: config OK (node)")
            return 0
        try:
            return asyncio.run(run_node(cfg))
        except KeyboardInterrupt:
            return 130
    if args.role == "adapter" and (args.sandbox or cfg.remote):
        print("hubd: config error: --role adapter runs no OVN and accepts no [remote] sources", file=sys.stderr)
        return 2
    policies = 0
    if args.role == "hub":
        try:
            policies = hub.check_policies()
        except ConfigError as exc:
            print(f"hubd: config error: {exc}", file=sys.stderr)
            return 2
    if args.check:
        print(f"hubd: config OK ({len(cfg.adapter_specs())} adapters, {policies} hub-level policies)")
        return 0
    # Everything imported so far lives for the whole run: keep it out of the
    # cyclic collector's generations (bulk paths also pause it, core.gcpause).
    gc.freeze()
    if args.role == "adapter":
        from hub.remote import RemoteAdapterDaemon

        runner = RemoteAdapterDaemon(cfg).run()
    else:
        runner = hub.run()
    try:
        return asyncio.run(runner)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("ovn_hub.hubd").critical("hubd failed: %s: %s", type(exc).__name__, exc, exc_info=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
