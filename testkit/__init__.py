"""Test harnesses shipped with OVN Hub, for its own tests and for adapter writers.

Not product code: ``core``, ``hub`` and ``adapters`` never import it (an
import-linter contract says so).

* :mod:`testkit.conformance` - the adapter conformance kit, a pytest plugin
  (registered through the ``pytest11`` entry point ``ovn_hub``);
* :mod:`testkit.proxy` - a loopback TCP / unix-socket proxy whose connection a
  test can break and restore (the "orchestrator went away" of a fake).
"""
