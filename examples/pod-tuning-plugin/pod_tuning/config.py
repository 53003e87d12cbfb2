"""The ``pod-tuning:`` section of the agent's YAML."""

from __future__ import annotations

from pydantic import Field, model_validator

from contiv_sdk import PluginConfig


class PodTuningConfig(PluginConfig):
    """What the plugin accepts from pod annotations."""

    annotation_prefix: str = Field("tuning.example.com", min_length=1, pattern=r"^[a-z0-9.-]+$")
    """Annotation keys are ``<prefix>/sysctls`` and ``<prefix>/mtu``. KSR must reflect this
    prefix (``ksr.pod_annotation_prefixes``)."""

    allowed_sysctls: list[str] = Field(default_factory=lambda: ["net."], min_length=1)
    """Sysctl name prefixes a pod may set; only ``net.*`` ones are per network namespace, so a
    prefix outside ``net.`` is refused."""

    min_mtu: int = Field(576, ge=68, le=65535)
    """Smallest MTU a pod may ask for."""

    max_mtu: int = Field(9000, ge=68, le=65535)
    """Largest MTU a pod may ask for."""

    @model_validator(mode="after")
    def _check(self) -> PodTuningConfig:
        if self.min_mtu > self.max_mtu:
            raise ValueError(f"min_mtu {self.min_mtu} is larger than max_mtu {self.max_mtu}")
        outside = [p for p in self.allowed_sysctls if not p.startswith("net.")]
        if outside:
            raise ValueError(f"allowed_sysctls {outside}: only net.* sysctls are per namespace")
        return self
