"""``python -m bench <name> [options]``: run one benchmark, print one JSON object."""

from __future__ import annotations

import argparse
import sys

from bench import bulk, churn, cloudfoundry, cni, dataplane, fabric, k8s, mesos, mqtt, normalize, plug, resync, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description="OVN Hub benchmarks (JSON on stdout)")
    subs = ap.add_subparsers(dest="name", required=True)
    bulk.add_arguments(subs.add_parser("bulk", help="program N endpoints into an empty NB: hub vs baselines"))
    resync.add_arguments(subs.add_parser("resync", help="restart hubd over N programmed endpoints"))
    k8s.add_arguments(subs.add_parser("k8s", help="k8s adapter at scale: normalize, pods+services, policies"))
    mesos.add_arguments(subs.add_parser("mesos", help="Mesos adapter: RecordIO parse + normalize, a big SUBSCRIBED into NB"))
    mqtt.add_arguments(subs.add_parser("mqtt", help="MQTT mirror vs bare aiomqtt on a real mosquitto"))
    dataplane.add_arguments(
        subs.add_parser("dataplane", help="Docker start to port committed, up and first ping through OVN (root)")
    )
    plug.add_arguments(subs.add_parser("plug", help="one attachment's link plumbing: iproute2 vs pyroute2 (root)"))
    churn.add_arguments(subs.add_parser("churn", help="one change's latency while 50k endpoints exist and change"))
    fabric.add_arguments(subs.add_parser("fabric", help="N networks x M endpoints joined into a router: hub vs raw, northd"))
    cloudfoundry.add_arguments(
        subs.add_parser("cloudfoundry", help="CF adapter: LRP event decode+normalize rate, a 20k-instance relist into NB")
    )
    normalize.add_arguments(
        subs.add_parser("normalize", help="Docker events and the static file normalized on one core, vs bare decodes")
    )
    cni.add_arguments(subs.add_parser("cni", help="CNI ADD latency, a burst of N: ovn-hub vs bridge + host-local (root)"))
    summary.add_arguments(subs.add_parser("summary", help="one table (figure, hub, baseline, ratio, target, met) over bench JSON files"))
    args = ap.parse_args(argv)
    if args.name == "summary":
        return summary.main(args)
    if args.name == "cloudfoundry":
        return cloudfoundry.main(args)
    if args.name == "bulk":
        return bulk.main(args)
    if args.name == "k8s":
        return k8s.main(args)
    if args.name == "mesos":
        return mesos.main(args)
    if args.name == "mqtt":
        return mqtt.main(args)
    if args.name == "plug":
        return plug.main(args)
    if args.name == "churn":
        return churn.main(args)
    if args.name == "fabric":
        return fabric.main(args)
    if args.name == "cni":
        return cni.main(args)
    if args.name == "normalize":
        return normalize.main(args)
    if args.name == "dataplane":
        return dataplane.main(args)
    return resync.main(args)


if __name__ == "__main__":
    sys.exit(main())
