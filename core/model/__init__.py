"""The canonical model every adapter speaks and the OVN programmer consumes.

``objects`` holds the Structs and events, ``validate`` the one strict
validator and its limits, ``codec`` the JSON codecs and the JSON Schema.
Import from here (``from core.model import Endpoint, validate``).
"""

from core.model.codec import decode_event, decode_object, encode, json_schema
from core.model.objects import (
    LABEL_WORKLOAD,
    MODEL_VERSION,
    NO_LABELS,
    OBJECT_KINDS,
    RUNTIME_RANKS,
    SCHEMA_ID,
    Delete,
    Endpoint,
    Event,
    Expr,
    InputEvent,
    Invalid,
    LBRule,
    Namespace,
    Network,
    Object,
    ObjectKind,
    Peer,
    Policy,
    PolicyPort,
    PortSpec,
    Programmed,
    Ready,
    Rejected,
    Rule,
    Selector,
    Service,
    Snapshot,
    Source,
    StatusEvent,
    Upsert,
    kind_of,
    share_names,
    workload_of,
    workload_rank,
)
from core.model.validate import (
    LIMITS,
    MAX_AFFINITY_TIMEOUT,
    NETWORK_NAME,
    bad_characters,
    match_unicast_mac,
    match_v4_host,
    parse_hostport,
    quote,
    validate,
    validate_ip,
    validate_label_key,
    validate_mac,
    validate_selector,
    validate_source,
    validate_subnet,
)

__all__ = [
    "LABEL_WORKLOAD", "LIMITS", "MAX_AFFINITY_TIMEOUT", "MODEL_VERSION", "NETWORK_NAME", "NO_LABELS", "OBJECT_KINDS", "RUNTIME_RANKS", "SCHEMA_ID", "Delete", "Endpoint", "Event",
    "Expr", "InputEvent", "Invalid", "LBRule", "Namespace", "Network", "Object", "ObjectKind", "Peer", "Policy",
    "PolicyPort", "PortSpec", "Programmed", "Ready", "Rejected", "Rule", "Selector", "Service", "Snapshot", "Source",
    "StatusEvent", "Upsert", "bad_characters", "decode_event", "decode_object", "encode", "json_schema", "kind_of",
    "match_unicast_mac", "match_v4_host", "parse_hostport", "quote", "share_names", "validate", "validate_ip", "validate_label_key", "validate_mac", "validate_selector",
    "validate_source", "validate_subnet", "workload_of", "workload_rank",
]
