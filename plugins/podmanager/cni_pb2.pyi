# ruff: noqa
# mypy: ignore-errors
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CNIRequest(_message.Message):
    __slots__ = ("version", "container_id", "network_namespace", "interface_name", "extra_nw_config", "extra_arguments", "ipam_type", "ipam_data", "cni_path", "cni_invocation")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_NAME_FIELD_NUMBER: _ClassVar[int]
    EXTRA_NW_CONFIG_FIELD_NUMBER: _ClassVar[int]
    EXTRA_ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    IPAM_TYPE_FIELD_NUMBER: _ClassVar[int]
    IPAM_DATA_FIELD_NUMBER: _ClassVar[int]
    CNI_PATH_FIELD_NUMBER: _ClassVar[int]
    CNI_INVOCATION_FIELD_NUMBER: _ClassVar[int]
    version: str
    container_id: str
    network_namespace: str
    interface_name: str
    extra_nw_config: str
    extra_arguments: str
    ipam_type: str
    ipam_data: str
    cni_path: str
    cni_invocation: bool
    def __init__(self, version: _Optional[str] = ..., container_id: _Optional[str] = ..., network_namespace: _Optional[str] = ..., interface_name: _Optional[str] = ..., extra_nw_config: _Optional[str] = ..., extra_arguments: _Optional[str] = ..., ipam_type: _Optional[str] = ..., ipam_data: _Optional[str] = ..., cni_path: _Optional[str] = ..., cni_invocation: _Optional[bool] = ...) -> None: ...

class CNIReply(_message.Message):
    __slots__ = ("result", "error", "interfaces", "routes", "dns", "error_details", "output")
    class Interface(_message.Message):
        __slots__ = ("name", "mac", "sandbox", "ip_addresses")
        class IP(_message.Message):
            __slots__ = ("version", "address", "gateway")
            class Version(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
                __slots__ = ()
                IPV4: _ClassVar[CNIReply.Interface.IP.Version]
                IPV6: _ClassVar[CNIReply.Interface.IP.Version]
            IPV4: CNIReply.Interface.IP.Version
            IPV6: CNIReply.Interface.IP.Version
            VERSION_FIELD_NUMBER: _ClassVar[int]
            ADDRESS_FIELD_NUMBER: _ClassVar[int]
            GATEWAY_FIELD_NUMBER: _ClassVar[int]
            version: CNIReply.Interface.IP.Version
            address: str
            gateway: str
            def __init__(self, version: _Optional[_Union[CNIReply.Interface.IP.Version, str]] = ..., address: _Optional[str] = ..., gateway: _Optional[str] = ...) -> None: ...
        NAME_FIELD_NUMBER: _ClassVar[int]
        MAC_FIELD_NUMBER: _ClassVar[int]
        SANDBOX_FIELD_NUMBER: _ClassVar[int]
        IP_ADDRESSES_FIELD_NUMBER: _ClassVar[int]
        name: str
        mac: str
        sandbox: str
        ip_addresses: _containers.RepeatedCompositeFieldContainer[CNIReply.Interface.IP]
        def __init__(self, name: _Optional[str] = ..., mac: _Optional[str] = ..., sandbox: _Optional[str] = ..., ip_addresses: _Optional[_Iterable[_Union[CNIReply.Interface.IP, _Mapping]]] = ...) -> None: ...
    class Route(_message.Message):
        __slots__ = ("dst", "gw")
        DST_FIELD_NUMBER: _ClassVar[int]
        GW_FIELD_NUMBER: _ClassVar[int]
        dst: str
        gw: str
        def __init__(self, dst: _Optional[str] = ..., gw: _Optional[str] = ...) -> None: ...
    class DNS(_message.Message):
        __slots__ = ("domain", "nameservers", "search", "options")
        DOMAIN_FIELD_NUMBER: _ClassVar[int]
        NAMESERVERS_FIELD_NUMBER: _ClassVar[int]
        SEARCH_FIELD_NUMBER: _ClassVar[int]
        OPTIONS_FIELD_NUMBER: _ClassVar[int]
        domain: str
        nameservers: _containers.RepeatedScalarFieldContainer[str]
        search: _containers.RepeatedScalarFieldContainer[str]
        options: _containers.RepeatedScalarFieldContainer[str]
        def __init__(self, domain: _Optional[str] = ..., nameservers: _Optional[_Iterable[str]] = ..., search: _Optional[_Iterable[str]] = ..., options: _Optional[_Iterable[str]] = ...) -> None: ...
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    result: int
    error: str
    interfaces: _containers.RepeatedCompositeFieldContainer[CNIReply.Interface]
    routes: _containers.RepeatedCompositeFieldContainer[CNIReply.Route]
    dns: _containers.RepeatedCompositeFieldContainer[CNIReply.DNS]
    error_details: str
    output: str
    def __init__(self, result: _Optional[int] = ..., error: _Optional[str] = ..., interfaces: _Optional[_Iterable[_Union[CNIReply.Interface, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[CNIReply.Route, _Mapping]]] = ..., dns: _Optional[_Iterable[_Union[CNIReply.DNS, _Mapping]]] = ..., error_details: _Optional[str] = ..., output: _Optional[str] = ...) -> None: ...
