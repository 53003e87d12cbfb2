"""The plugin's values (one model per descriptor), their keys, and the annotation parser.

Each tuned pod gets

* one :class:`PodSysctl` per sysctl, key ``config/pod-tuning/v1/sysctl/<netns>/<name>``;
* at most one :class:`PodMtu`, key ``config/pod-tuning/v1/mtu/<netns>/<ifname>``;

where ``<netns>`` is the pod's namespace file as a key-safe label. Both name the pod interface
(``ifname``): they depend on it, so they are applied once the pod is wired.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from contiv_sdk import ModelSpec, namespace_label
from pod_tuning.config import PodTuningConfig

SYSCTL_SPEC = ModelSpec("pod-tuning", "v1", "sysctl")
MTU_SPEC = ModelSpec("pod-tuning", "v1", "mtu")

_SYSCTL_NAME = re.compile(r"^net(\.[A-Za-z0-9_-]+)+$")
_INTS = re.compile(r"^-?\d+(\s+-?\d+)*$")


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PodSysctl(_Value):
    """One ``net.*`` sysctl inside a pod's network namespace."""

    namespace: str
    """The pod's network namespace (its file, as the CNI runtime gave it)."""
    ifname: str
    """The pod interface the setting waits for."""
    name: str = Field(pattern=_SYSCTL_NAME.pattern)
    """Dotted sysctl name, e.g. ``net.ipv4.tcp_syncookies``."""
    value: str = Field(min_length=1, max_length=256)
    """What is written to ``/proc/sys/<name>`` (whitespace-separated fields allowed)."""


class PodMtu(_Value):
    """The MTU of a pod's interface."""

    namespace: str
    """The pod's network namespace."""
    ifname: str
    """The pod interface."""
    mtu: int = Field(ge=68, le=65535)
    """The MTU in bytes."""


def sysctl_key(namespace: str, name: str) -> str:
    return f"{SYSCTL_SPEC.key_prefix}{namespace_label(namespace)}/{name}"


def mtu_key(namespace: str, ifname: str) -> str:
    return f"{MTU_SPEC.key_prefix}{namespace_label(namespace)}/{ifname}"


def read_own_sysctl(name: str) -> str | None:
    """The value of ``name`` in the agent's own namespace, or None when it has no such sysctl."""
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as handle:
            return handle.read().strip()
    except OSError:
        return None


@dataclass
class Tuning:
    """What a pod's annotations ask for, and what was wrong with them."""

    sysctls: dict[str, str] = field(default_factory=dict)
    mtu: int | None = None
    errors: list[str] = field(default_factory=list)


def parse_annotations(
    annotations: Mapping[str, str],
    config: PodTuningConfig,
    read_sysctl: Callable[[str], str | None] = read_own_sysctl,
) -> Tuning:
    """Parse ``<prefix>/sysctls`` (``name=value,name=value``) and ``<prefix>/mtu``.

    Every bad item is left out with an error naming the annotation, the item and the reason;
    the good ones are kept. A sysctl must be allowed by the config, exist in the agent's own
    namespace (``read_sysctl``; every network namespace has the same ``net.*`` names) and,
    when the existing value is numeric, be numeric with the same number of fields.
    """
    tuning = Tuning()
    sysctls_key = f"{config.annotation_prefix}/sysctls"
    mtu_annotation = f"{config.annotation_prefix}/mtu"
    for item in (i.strip() for i in annotations.get(sysctls_key, "").split(",")):
        if not item:
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        error = _check_sysctl(name, sep, value, config, read_sysctl)
        if error:
            tuning.errors.append(f"annotation {sysctls_key}: {item!r}: {error}")
        else:
            tuning.sysctls[name] = value
    raw = annotations.get(mtu_annotation)
    if raw is not None:
        try:
            mtu = int(raw.strip())
        except ValueError:
            tuning.errors.append(f"annotation {mtu_annotation}: {raw!r} is not an integer")
        else:
            if config.min_mtu <= mtu <= config.max_mtu:
                tuning.mtu = mtu
            else:
                tuning.errors.append(f"annotation {mtu_annotation}: {mtu} is outside the allowed "
                                     f"range {config.min_mtu}..{config.max_mtu}")
    return tuning


def _check_sysctl(
    name: str, sep: str, value: str, config: PodTuningConfig,
    read_sysctl: Callable[[str], str | None],
) -> str | None:
    if not sep:
        return "expected name=value"
    if not _SYSCTL_NAME.match(name):
        return "not a net.* sysctl name"
    if not any(name.startswith(prefix) for prefix in config.allowed_sysctls):
        return f"not allowed (allowed: {', '.join(config.allowed_sysctls)})"
    if not value or len(value) > 256 or not value.isprintable():
        return "the value must be 1-256 printable characters"
    current = read_sysctl(name)
    if current is None:
        return "no such sysctl"
    if _INTS.match(current) and not (_INTS.match(value) and len(value.split()) == len(current.split())):
        return f"expected {len(current.split())} integer(s) like the current {current!r}"
    return None
