"""The reflected Kubernetes resources: typed models, etcd keys and the resource table.

Everything KSR writes lives below :data:`KSR_PREFIX` (``/vnf-agent/contiv-ksr/``); the key
functions here return keys *relative* to that prefix, Contiv's layout (contiv.md 2.1):
``k8s/<keyword>/<name>`` for cluster-scoped and ``k8s/<keyword>/<name>/namespace/<ns>`` for
namespaced objects. Values are the JSON of the models (``core.kvdb.api.encode_model``).

Only the fields the agent needs are kept (contiv.md 2.2), plus pod readiness/termination and
the dual-stack fields. Field names are snake_case; lists keep the API's order.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict

from core.kvdb.api import agent_prefix

#: The service label KSR writes under.
KSR_LABEL = "contiv-ksr"
#: Absolute prefix of everything KSR owns in etcd.
KSR_PREFIX = agent_prefix(KSR_LABEL)
#: Relative prefix of all reflected Kubernetes objects.
K8S_PREFIX = "k8s/"
#: Relative key of the statistics KSR publishes (also used for data-loss detection).
STATUS_GAUGES_KEY = "status/gauges"
#: Relative prefix of the node-ID records written by nodesync (``allocatedIDs/<id>``).
ALLOCATED_IDS_PREFIX = "allocatedIDs/"
#: Prefix (absolute) of the leader-election keys.
ELECTION_PREFIX = "/contiv-ksr/election/"


class _Model(BaseModel):
    """Base of the stored models: unknown fields from newer writers are ignored."""

    model_config = ConfigDict(extra="ignore")


# ----------------------------------------------------------------------------- shared pieces


class Protocol(enum.StrEnum):
    """L4 protocol of a port."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class ObjectReference(_Model):
    """Reference to another object (an endpoint's pod)."""

    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""


class SelectorOperator(enum.StrEnum):
    """Operator of a label-selector requirement."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelectorRequirement(_Model):
    """One ``matchExpressions`` entry."""

    key: str
    operator: SelectorOperator
    values: list[str] = []


class LabelSelector(_Model):
    """A label selector; an empty one selects everything."""

    match_labels: dict[str, str] = {}
    match_expressions: list[LabelSelectorRequirement] = []


# ----------------------------------------------------------------------------- Namespace


class Namespace(_Model):
    """A Kubernetes Namespace."""

    name: str
    labels: dict[str, str] = {}


# ----------------------------------------------------------------------------- Pod


class ContainerPort(_Model):
    """A port a container declares."""

    name: str = ""
    container_port: int
    host_port: int = 0
    protocol: Protocol = Protocol.TCP
    host_ip_address: str = ""


class Container(_Model):
    """A pod container (only what networking needs)."""

    name: str
    ports: list[ContainerPort] = []


class Pod(_Model):
    """A Kubernetes Pod.

    ``annotations`` holds only those with a configured prefix (``contivpp.io`` by default).
    ``ready`` is the Ready condition; ``terminating`` is true once the pod has a deletion
    timestamp.
    """

    name: str
    namespace: str
    uid: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    node_name: str = ""
    host_network: bool = False
    ip_address: str = ""
    ip_addresses: list[str] = []
    host_ip_address: str = ""
    host_ip_addresses: list[str] = []
    phase: str = ""
    ready: bool = False
    terminating: bool = False
    containers: list[Container] = []


#: Only annotations whose key starts with this are reflected for pods.
POD_ANNOTATION_PREFIX = "contivpp.io"


# ----------------------------------------------------------------------------- Service


class TargetPortType(enum.StrEnum):
    NUMBER = "NUMBER"
    STRING = "STRING"


class TargetPort(_Model):
    """A service's target port: a number or a named container port."""

    type: TargetPortType = TargetPortType.NUMBER
    int_val: int = 0
    string_val: str = ""


class ServicePort(_Model):
    """One port of a Service."""

    name: str = ""
    protocol: Protocol = Protocol.TCP
    port: int
    target_port: TargetPort = TargetPort()
    node_port: int = 0


class Service(_Model):
    """A Kubernetes Service."""

    name: str
    namespace: str
    ports: list[ServicePort] = []
    selector: dict[str, str] = {}
    cluster_ip: str = ""
    cluster_ips: list[str] = []
    ip_families: list[str] = []
    ip_family_policy: str = ""
    service_type: str = "ClusterIP"
    external_ips: list[str] = []
    external_name: str = ""
    lb_ingress_ips: list[str] = []
    loadbalancer_ip: str = ""
    loadbalancer_source_ranges: list[str] = []
    session_affinity: str = "None"
    session_affinity_timeout: int = 0
    external_traffic_policy: str = ""
    internal_traffic_policy: str = ""
    health_check_node_port: int = 0
    annotations: dict[str, str] = {}
    labels: dict[str, str] = {}


# ----------------------------------------------------------------------------- Endpoints


class EndpointAddress(_Model):
    """One address of a legacy Endpoints subset."""

    ip: str
    host_name: str = ""
    node_name: str = ""
    target_ref: ObjectReference | None = None


class EndpointPort(_Model):
    """A port of an Endpoints subset or an EndpointSlice (``port`` 0: all ports)."""

    name: str = ""
    port: int = 0
    protocol: Protocol = Protocol.TCP
    app_protocol: str = ""


class EndpointSubset(_Model):
    """Addresses sharing the same ports."""

    addresses: list[EndpointAddress] = []
    not_ready_addresses: list[EndpointAddress] = []
    ports: list[EndpointPort] = []


class Endpoints(_Model):
    """A legacy core/v1 Endpoints object."""

    name: str
    namespace: str
    endpoint_subsets: list[EndpointSubset] = []


class SliceEndpoint(_Model):
    """One endpoint of an EndpointSlice; the conditions default like the API says (nil = true)."""

    addresses: list[str]
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    hostname: str = ""
    node_name: str = ""
    zone: str = ""
    target_ref: ObjectReference | None = None


class EndpointSlice(_Model):
    """A ``discovery.k8s.io/v1`` EndpointSlice; ``service_name`` is its owning Service."""

    name: str
    namespace: str
    service_name: str = ""
    address_type: str = "IPv4"
    endpoints: list[SliceEndpoint] = []
    ports: list[EndpointPort] = []


# ----------------------------------------------------------------------------- Policy


class PolicyType(enum.StrEnum):
    """``spec.policyTypes`` as Contiv stored it (DEFAULT when the list is empty)."""

    DEFAULT = "DEFAULT"
    INGRESS = "INGRESS"
    EGRESS = "EGRESS"
    INGRESS_AND_EGRESS = "INGRESS_AND_EGRESS"


class PortRefType(enum.StrEnum):
    NUMBER = "NUMBER"
    NAME = "NAME"


class PortRef(_Model):
    """A port given by number or by name."""

    type: PortRefType = PortRefType.NUMBER
    number: int = 0
    name: str = ""


class PolicyPort(_Model):
    """A port of a policy rule (``port`` None: every port; ``end_port`` for ranges)."""

    protocol: Protocol = Protocol.TCP
    port: PortRef | None = None
    end_port: int = 0


class IPBlock(_Model):
    """A CIDR with exceptions."""

    cidr: str
    except_: list[str] = []


class PolicyPeer(_Model):
    """A rule peer: pods and/or namespaces by selector, or an IP block."""

    pods: LabelSelector | None = None
    namespaces: LabelSelector | None = None
    ip_block: IPBlock | None = None


class IngressRule(_Model):
    """Traffic allowed in (empty ``from_`` list: from everywhere)."""

    ports: list[PolicyPort] = []
    from_: list[PolicyPeer] = []


class EgressRule(_Model):
    """Traffic allowed out (empty ``to`` list: to everywhere)."""

    ports: list[PolicyPort] = []
    to: list[PolicyPeer] = []


class Policy(_Model):
    """A ``networking.k8s.io/v1`` NetworkPolicy."""

    name: str
    namespace: str
    labels: dict[str, str] = {}
    pods: LabelSelector = LabelSelector()
    policy_type: PolicyType = PolicyType.DEFAULT
    ingress_rules: list[IngressRule] = []
    egress_rules: list[EgressRule] = []


# ----------------------------------------------------------------------------- Node


class NodeAddress(_Model):
    """An address of a node; ``type`` is InternalIP, ExternalIP, Hostname, ..."""

    type: str
    address: str


class NodeSystemInfo(_Model):
    """``status.nodeInfo``."""

    machine_id: str = ""
    system_uuid: str = ""
    boot_id: str = ""
    kernel_version: str = ""
    os_image: str = ""
    container_runtime_version: str = ""
    kubelet_version: str = ""
    kube_proxy_version: str = ""
    operating_system: str = ""
    architecture: str = ""


class Node(_Model):
    """A Kubernetes Node."""

    name: str
    pod_cidr: str = ""
    pod_cidrs: list[str] = []
    provider_id: str = ""
    addresses: list[NodeAddress] = []
    node_info: NodeSystemInfo = NodeSystemInfo()
    ready: bool = False
    unschedulable: bool = False


# ----------------------------------------------------------------------------- statistics


class ReflectorStats(_Model):
    """Counters of one reflector (Contiv's KsrStats)."""

    adds: int = 0
    updates: int = 0
    deletes: int = 0
    resyncs: int = 0
    add_errors: int = 0
    upd_errors: int = 0
    del_errors: int = 0
    arg_errors: int = 0
    res_errors: int = 0


class KsrGauges(_Model):
    """The value at ``status/gauges``: per-reflector counters and which reflectors are synced."""

    stats: dict[str, ReflectorStats] = {}
    synced: dict[str, bool] = {}
    leader: str = ""


# ----------------------------------------------------------------------------- keys
