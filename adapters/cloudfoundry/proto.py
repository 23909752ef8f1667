"""The Diego BBS messages the adapter reads, declared in Python (no ``.proto``, no protoc).

Written from the field tables of ``shared/reference/cf-bbs-protocol.md`` §5
(package ``models`` of cloudfoundry/bbs, proto3): names, numbers and types
only; every gogoproto option is dropped (none changes the wire).  The two
``oneof``s (``optional_routable``, ``optional_index``) are real oneofs, which is
wire-identical to proto3 ``optional`` and keeps "unset" apart from false/0.
``DesiredLRP`` is declared empty: the stream carries desired-LRP events the
adapter skips, and an empty message lets the runtime skip their contents.

The descriptors live in a private :class:`~google.protobuf.descriptor_pool.DescriptorPool`,
so nothing clashes with another ``models`` package in the process.  Every
message class is an attribute of this module (``proto.ActualLRP()``…).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _INT32, _UINT32, _INT64, _BOOL = _F.TYPE_STRING, _F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_INT64, _F.TYPE_BOOL
_MSG, _ENUM = _F.TYPE_MESSAGE, _F.TYPE_ENUM
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
PACKAGE = "models"

# (name, number, type, label, type name or "", oneof index or None)
Field = tuple[str, int, int, int, str, int | None]


def _f(name: str, number: int, typ: int, *, rep: bool = False, ref: str = "", oneof: int | None = None) -> Field:
    return (name, number, typ, _REP if rep else _OPT, ref, oneof)


#: message name → (fields, oneof names, nested enums {name: [(value, number)]}, nested messages)
_MESSAGES: dict[str, tuple[list[Field], list[str], dict[str, list[tuple[str, int]]]]] = {
    "PortMapping": (
        [_f("container_port", 1, _UINT32), _f("host_port", 2, _UINT32),
         _f("container_tls_proxy_port", 3, _UINT32), _f("host_tls_proxy_port", 4, _UINT32)], [], {},
    ),
    "ActualLRPKey": ([_f("process_guid", 1, _STRING), _f("index", 2, _INT32), _f("domain", 3, _STRING)], [], {}),
    "ActualLRPInstanceKey": ([_f("instance_guid", 1, _STRING), _f("cell_id", 2, _STRING)], [], {}),
    "ActualLRPNetInfo": (
        [_f("address", 1, _STRING), _f("ports", 2, _MSG, rep=True, ref=".models.PortMapping"),
         _f("instance_address", 3, _STRING),
         _f("preferred_address", 4, _ENUM, ref=".models.ActualLRPNetInfo.PreferredAddress"),
         _f("instance_ipv6_address", 5, _STRING)],
        [], {"PreferredAddress": [("UNKNOWN", 0), ("INSTANCE", 1), ("HOST", 2)]},
    ),
    "ActualLRPInternalRoute": ([_f("hostname", 1, _STRING)], [], {}),
    "ModificationTag": ([_f("epoch", 1, _STRING), _f("index", 2, _UINT32)], [], {}),
    "ActualLRP": (
        [_f("actual_lrp_key", 1, _MSG, ref=".models.ActualLRPKey"),
         _f("actual_lrp_instance_key", 2, _MSG, ref=".models.ActualLRPInstanceKey"),
         _f("actual_lrp_net_info", 3, _MSG, ref=".models.ActualLRPNetInfo"),
         _f("crash_count", 4, _INT32), _f("crash_reason", 5, _STRING), _f("state", 6, _STRING),
         _f("placement_error", 7, _STRING), _f("since", 8, _INT64),
         _f("modification_tag", 9, _MSG, ref=".models.ModificationTag"),
         _f("presence", 10, _ENUM, ref=".models.ActualLRP.Presence"),
         _f("actual_lrp_internal_routes", 11, _MSG, rep=True, ref=".models.ActualLRPInternalRoute"),
         _f("metric_tags", 12, _MSG, rep=True, ref=".models.ActualLRP.MetricTagsEntry"),
         _f("routable", 13, _BOOL, oneof=0), _f("availability_zone", 14, _STRING)],
        ["optional_routable"], {"Presence": [("ORDINARY", 0), ("EVACUATING", 1), ("SUSPECT", 2)]},
    ),
    "Error": (
        [_f("type", 1, _ENUM, ref=".models.Error.Type"), _f("message", 2, _STRING)], [],
        {"Type": [
            ("UnknownError", 0), ("InvalidRecord", 3), ("InvalidRequest", 4), ("InvalidResponse", 5),
            ("InvalidProtobufMessage", 6), ("InvalidJSON", 7), ("FailedToOpenEnvelope", 8),
            ("InvalidStateTransition", 9), ("ResourceConflict", 11), ("ResourceExists", 12),
            ("ResourceNotFound", 13), ("RouterError", 14), ("ActualLRPCannotBeClaimed", 15),
            ("ActualLRPCannotBeStarted", 16), ("ActualLRPCannotBeCrashed", 17), ("ActualLRPCannotBeFailed", 18),
            ("ActualLRPCannotBeRemoved", 19), ("ActualLRPCannotBeUnclaimed", 21), ("RunningOnDifferentCell", 24),
            ("GUIDGeneration", 26), ("Deserialize", 27), ("Deadlock", 28), ("Unrecoverable", 29),
            ("LockCollision", 30), ("Timeout", 31),
        ]},
    ),
    "ActualLRPsRequest": (
        [_f("domain", 1, _STRING), _f("cell_id", 2, _STRING), _f("process_guid", 3, _STRING),
         _f("index", 4, _INT32, oneof=0)], ["optional_index"], {},
    ),
    "ActualLRPsResponse": (
        [_f("error", 1, _MSG, ref=".models.Error"), _f("actual_lrps", 2, _MSG, rep=True, ref=".models.ActualLRP")],
        [], {},
    ),
    "EventsByCellId": ([_f("cell_id", 1, _STRING)], [], {}),
    "ActualLRPInstanceCreatedEvent": (
        [_f("actual_lrp", 1, _MSG, ref=".models.ActualLRP"), _f("trace_id", 2, _STRING)], [], {},
    ),
    "ActualLRPInstanceRemovedEvent": (
        [_f("actual_lrp", 1, _MSG, ref=".models.ActualLRP"), _f("trace_id", 2, _STRING)], [], {},
    ),
    "ActualLRPInfo": (
        [_f("actual_lrp_net_info", 3, _MSG, ref=".models.ActualLRPNetInfo"),
         _f("crash_count", 4, _INT32), _f("crash_reason", 5, _STRING), _f("state", 6, _STRING),
         _f("placement_error", 7, _STRING), _f("since", 8, _INT64),
         _f("modification_tag", 9, _MSG, ref=".models.ModificationTag"),
         _f("presence", 10, _ENUM, ref=".models.ActualLRP.Presence"),
         _f("Routable", 11, _BOOL, oneof=0), _f("availability_zone", 12, _STRING)],
        ["optional_routable"], {},
    ),
    "ActualLRPInstanceChangedEvent": (
        [_f("actual_lrp_key", 1, _MSG, ref=".models.ActualLRPKey"),
         _f("actual_lrp_instance_key", 2, _MSG, ref=".models.ActualLRPInstanceKey"),
         _f("before", 3, _MSG, ref=".models.ActualLRPInfo"), _f("after", 4, _MSG, ref=".models.ActualLRPInfo"),
         _f("trace_id", 5, _STRING)], [], {},
    ),
    "ActualLRPCrashedEvent": (
        [_f("actual_lrp_key", 1, _MSG, ref=".models.ActualLRPKey"),
         _f("actual_lrp_instance_key", 2, _MSG, ref=".models.ActualLRPInstanceKey"),
         _f("crash_count", 3, _INT32), _f("crash_reason", 4, _STRING), _f("since", 5, _INT64)], [], {},
    ),
    "DesiredLRP": ([], [], {}),
    "DesiredLRPCreatedEvent": (
        [_f("desired_lrp", 1, _MSG, ref=".models.DesiredLRP"), _f("trace_id", 2, _STRING)], [], {},
    ),
    "DesiredLRPChangedEvent": (
        [_f("before", 1, _MSG, ref=".models.DesiredLRP"), _f("after", 2, _MSG, ref=".models.DesiredLRP"),
         _f("trace_id", 3, _STRING)], [], {},
    ),
    "DesiredLRPRemovedEvent": (
        [_f("desired_lrp", 1, _MSG, ref=".models.DesiredLRP"), _f("trace_id", 2, _STRING)], [], {},
    ),
}  # fmt: skip


def _field(msg: descriptor_pb2.DescriptorProto, spec: Field) -> None:
    name, number, typ, label, ref, oneof = spec
    f = msg.field.add(name=name, number=number, type=typ, label=label)
    if ref:
        f.type_name = ref
    if oneof is not None:
        f.oneof_index = oneof


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="ovn_hub/cloudfoundry/bbs.proto", package=PACKAGE, syntax="proto3")
    for name, (fields, oneofs, enums) in _MESSAGES.items():
        msg = fd.message_type.add(name=name)
        for spec in fields:
            _field(msg, spec)
        for oneof in oneofs:
            msg.oneof_decl.add(name=oneof)
        for enum_name, values in enums.items():
            enum = msg.enum_type.add(name=enum_name)
            for value, number in values:
                enum.value.add(name=value, number=number)
        if name == "ActualLRP":  # map<string, string> metric_tags = 12
            entry = msg.nested_type.add(name="MetricTagsEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_STRING, label=_OPT)
            entry.field.add(name="value", number=2, type=_STRING, label=_OPT)
    return fd


POOL = descriptor_pool.DescriptorPool()
POOL.Add(_file())


def message_class(name: str) -> Any:
    """The message class of ``models.<name>``."""
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(f"{PACKAGE}.{name}"))


PortMapping: Any = message_class("PortMapping")
ActualLRPKey: Any = message_class("ActualLRPKey")
ActualLRPInstanceKey: Any = message_class("ActualLRPInstanceKey")
ActualLRPNetInfo: Any = message_class("ActualLRPNetInfo")
ModificationTag: Any = message_class("ModificationTag")
ActualLRP: Any = message_class("ActualLRP")
Error: Any = message_class("Error")
ActualLRPsRequest: Any = message_class("ActualLRPsRequest")
ActualLRPsResponse: Any = message_class("ActualLRPsResponse")
EventsByCellId: Any = message_class("EventsByCellId")
ActualLRPInstanceCreatedEvent: Any = message_class("ActualLRPInstanceCreatedEvent")
ActualLRPInstanceRemovedEvent: Any = message_class("ActualLRPInstanceRemovedEvent")
ActualLRPInfo: Any = message_class("ActualLRPInfo")
ActualLRPInstanceChangedEvent: Any = message_class("ActualLRPInstanceChangedEvent")
ActualLRPCrashedEvent: Any = message_class("ActualLRPCrashedEvent")
DesiredLRPCreatedEvent: Any = message_class("DesiredLRPCreatedEvent")
DesiredLRPChangedEvent: Any = message_class("DesiredLRPChangedEvent")
DesiredLRPRemovedEvent: Any = message_class("DesiredLRPRemovedEvent")

#: ActualLRP.Presence and ActualLRPNetInfo.PreferredAddress numbers → proto names
PRESENCE = {0: "ORDINARY", 1: "EVACUATING", 2: "SUSPECT"}
PREFERRED_ADDRESS = {0: "UNKNOWN", 1: "INSTANCE", 2: "HOST"}
ERROR_TYPES = {v.number: v.name for v in POOL.FindEnumTypeByName(f"{PACKAGE}.Error.Type").values}

#: SSE ``event:`` name → payload message class (the ``lrp_instances.r1`` stream's names)
EVENTS: dict[str, Any] = {
    "actual_lrp_instance_created": ActualLRPInstanceCreatedEvent,
    "actual_lrp_instance_changed": ActualLRPInstanceChangedEvent,
    "actual_lrp_instance_removed": ActualLRPInstanceRemovedEvent,
    "actual_lrp_crashed": ActualLRPCrashedEvent,
    "desired_lrp_created": DesiredLRPCreatedEvent,
    "desired_lrp_changed": DesiredLRPChangedEvent,
    "desired_lrp_removed": DesiredLRPRemovedEvent,
}
