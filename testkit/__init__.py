"""Test harnesses shipped with OVN Hub, for its own tests and for adapter writers.

Not product code: ``core``, ``hub`` and ``adapters`` never import it (an
import-linter contract says so).

* :mod:`testkit.conformance` - the adapter conformance kit, a pytest plugin
  (registered through the ``pytest11`` entry point ``ovn_hub``);
* :mod:`testkit.proxy` - a loopback TCP / unix-socket proxy whose connection a
  test can break and restore (the "orchestrator went away" of a fake);
* :mod:`testkit.dockerd` - a private dockerd on a unix socket, busybox imported;
* :mod:`testkit.k8s_fake` - an in-process Kubernetes API server (list/watch wire protocol);
* :mod:`testkit.mosquitto` - a private mosquitto on loopback (password and TLS variants);
* :mod:`testkit.dataplane` - a one-host OVN data plane (NB+SB+northd, ovs-vswitchd netdev, ovn-controller);
* :mod:`testkit.chassis` - two chassis on one machine, Geneve between their netns, optional provider network;
* :mod:`testkit.ovn_trace` - ovn-trace verdicts on the logical flows ovn-northd compiled.

``bench`` uses these harnesses too; ``bench`` and product code never import ``tests``.
"""
