"""JSON codecs of canonical objects and events, and their JSON Schema.

Every decode failure, whatever its cause (not JSON, not the schema, nested too
deeply, too large), is an :class:`~core.model.objects.Invalid`: a bad line
costs that line, never the file or the adapter.
"""

from __future__ import annotations

from typing import Any

import msgspec

from core.model.objects import MODEL_VERSION, SCHEMA_ID, Event, Invalid, Object
from core.model.validate import _QUOTE, LIMITS

_event_decoder = msgspec.json.Decoder(Event)
_object_decoder = msgspec.json.Decoder(Object)
_encoder = msgspec.json.Encoder(order="deterministic")


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, what: str, limit: int) -> Any:
    """Decode, and turn *every* failure into :class:`Invalid`: a bad line must
    cost that line, never the file or the adapter (a value nested 1,000 deep
    raises RecursionError inside msgspec)."""
    if len(data) > limit:
        raise Invalid("too-long", f"{what} is {len(data)} bytes, more than {limit}")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise Invalid("schema", f"{what} does not match the model: {_cut(str(exc))}") from None
    except msgspec.DecodeError as exc:
        raise Invalid("bad-json", f"not JSON: {_cut(str(exc))}") from None
    except RecursionError:
        raise Invalid("bad-json", f"{what} is nested too deeply") from None
    except (ValueError, TypeError, OverflowError, MemoryError) as exc:  # defensive: any other decoder failure
        raise Invalid("bad-json", f"{what} could not be decoded: {type(exc).__name__}") from None


def _cut(text: str, limit: int = 2 * _QUOTE) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def decode_event(data: bytes | str) -> Event:
    """Decode one canonical event (JSON); raise :class:`Invalid` on bad input."""
    ev: Event = _decode(_event_decoder, data, "event", LIMITS["event_bytes"])
    return ev


def decode_object(data: bytes | str) -> Object:
    """Decode one canonical object (JSON); raise :class:`Invalid` on bad input."""
    obj: Object = _decode(_object_decoder, data, "object", LIMITS["object_bytes"])
    return obj


def json_schema() -> dict[str, Any]:
    """The versioned JSON Schema of canonical events (and so of every object)."""
    schema = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "OVN Hub canonical event"
    schema["version"] = MODEL_VERSION
    return schema
