"""The fault suite: seeded, bounded, nothing timed; every case ends with NB exactly
equal to the desired state and the operator's 1,000 rows byte-identical.

The report (per fault: injected, converged, time to converge, failover time) is
printed as JSON at the end of the run, and written to ``$OVN_HUB_FAULT_REPORT``
when that is set.  ``OVN_HUB_FAULT_SEED`` changes the seed; ``OVN_HUB_FAULT_SCALE``
multiplies the injection counts (``make faults`` runs a longer round).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.faults import Report

SEED = int(os.environ.get("OVN_HUB_FAULT_SEED", "16"))
SCALE = max(1, int(os.environ.get("OVN_HUB_FAULT_SCALE", "1")))
_REPORT = Report(SEED)


@pytest.fixture(scope="session")
def fault_report() -> Iterator[Report]:
    yield _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORT.cases:
        return
    out = json.dumps(_REPORT.as_json(), indent=1)
    terminalreporter.write_sep("-", "fault suite report")
    terminalreporter.write_line(out)
    path = os.environ.get("OVN_HUB_FAULT_REPORT")
    if path:
        Path(path).write_text(out + "\n")
