# ruff: noqa
# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class STNRequest(_message.Message):
    __slots__ = ("interface_name", "dhcp_enabled")
    INTERFACE_NAME_FIELD_NUMBER: _ClassVar[int]
    DHCP_ENABLED_FIELD_NUMBER: _ClassVar[int]
    interface_name: str
    dhcp_enabled: bool
    def __init__(self, interface_name: _Optional[str] = ..., dhcp_enabled: _Optional[bool] = ...) -> None: ...

class STNReply(_message.Message):
    __slots__ = ("result", "error", "pci_address", "ip_addresses", "routes", "kernel_driver", "detail", "record_json")
    class Route(_message.Message):
        __slots__ = ("destination_subnet", "next_hop_ip")
        DESTINATION_SUBNET_FIELD_NUMBER: _ClassVar[int]
        NEXT_HOP_IP_FIELD_NUMBER: _ClassVar[int]
        destination_subnet: str
        next_hop_ip: str
        def __init__(self, destination_subnet: _Optional[str] = ..., next_hop_ip: _Optional[str] = ...) -> None: ...
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PCI_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    KERNEL_DRIVER_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    result: bool
    error: str
    pci_address: str
    ip_addresses: _containers.RepeatedScalarFieldContainer[str]
    routes: _containers.RepeatedCompositeFieldContainer[STNReply.Route]
    kernel_driver: str
    detail: str
    record_json: str
    def __init__(self, result: _Optional[bool] = ..., error: _Optional[str] = ..., pci_address: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[str]] = ..., routes: _Optional[_Iterable[_Union[STNReply.Route, _Mapping]]] = ..., kernel_driver: _Optional[str] = ..., detail: _Optional[str] = ..., record_json: _Optional[str] = ...) -> None: ...
