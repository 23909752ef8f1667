"""Write docs/schemas/*.json from hub.mqtt.payload_schemas() (``make schemas``).

tests/integration/test_mqtt.py compares the files with what the installed msgspec
generates, so run this after a change of a payload or of the msgspec pin.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.mqtt import payload_schemas  # noqa: E402

DOCS = ROOT / "docs" / "schemas"


def main() -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    schemas = payload_schemas()
    for name, schema in schemas.items():
        path = DOCS / f"{name}.json"
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for stale in DOCS.glob("*.json"):
        if stale.stem not in schemas:
            stale.unlink()
            print(f"removed {stale.relative_to(ROOT)} (no such payload)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
