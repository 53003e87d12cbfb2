"""A small CNI runtime, as libcni drives plugins: for tests, benchmarks and the lab.

It executes the plugins of a network configuration list in order for ADD (each gets the
previous plugin's result as ``prevResult``), in reverse for DEL, and in order for CHECK (both
with the cached ADD result as ``prevResult``), passing ``runtimeConfig`` for the capabilities a
plugin declares. Optionally it runs the plugins inside a network namespace (the "node").
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CNIPluginError(Exception):
    """A plugin failed: its error JSON (code, msg, details) or why it could not run."""

    def __init__(self, plugin: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{plugin}: [{code}] {msg}" + (f" ({details})" if details else ""))
        self.plugin = plugin
        self.code = code
        self.msg = msg
        self.details = details


@dataclass
class RuntimeConf:
    """The per-container inputs of a CNI call."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: Sequence[tuple[str, str]] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_pod(
        cls, container_id: str, netns: str, pod_name: str, pod_namespace: str, **kw: Any
    ) -> RuntimeConf:
        """A call for a Kubernetes pod (the ``K8S_POD_*`` arguments kubelet passes)."""
        args = (
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", pod_namespace),
            ("K8S_POD_NAME", pod_name),
            ("K8S_POD_INFRA_CONTAINER_ID", container_id),
        )
        return cls(container_id, netns, args=args, **kw)


class CNIRuntime:
    """Runs CNI plugins found in ``cni_path`` the way a container runtime does."""

    def __init__(
        self,
        cni_path: Sequence[str | Path],
        runtime_netns: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout_s: float = 120.0,
    ) -> None:
        self.cni_path = [str(p) for p in cni_path]
        self.runtime_netns = runtime_netns
        self.extra_env = dict(extra_env or {})
        self.timeout_s = timeout_s

    def find(self, plugin_type: str) -> str:
        for directory in self.cni_path:
            candidate = os.path.join(directory, plugin_type)
            if os.access(candidate, os.X_OK):
                return candidate
        raise CNIPluginError(plugin_type, 0, f"plugin not found in {os.pathsep.join(self.cni_path)}")

    def exec_plugin(
        self,
        plugin_type: str,
        command: str,
        config: Mapping[str, Any] | bytes,
        rt: RuntimeConf | None,
        env_override: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any] | None:
        """Execute one plugin; its parsed stdout on success, :class:`CNIPluginError` otherwise."""
        env = dict(os.environ)
        env.update(self.extra_env)
        env["CNI_COMMAND"] = command
        env["CNI_PATH"] = os.pathsep.join(self.cni_path)
        if rt is not None:
            env["CNI_CONTAINERID"] = rt.container_id
            env["CNI_NETNS"] = rt.netns
            env["CNI_IFNAME"] = rt.ifname
            env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in rt.args)
        for key, value in (env_override or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
        argv = [self.find(plugin_type)]
        if self.runtime_netns:
            argv = ["ip", "netns", "exec", self.runtime_netns, *argv]
        proc = subprocess.run(
            argv, input=stdin, env=env, capture_output=True, timeout=self.timeout_s, check=False
        )
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            try:
                err = json.loads(out)
                raise CNIPluginError(
                    plugin_type, int(err["code"]), str(err.get("msg", "")),
                    str(err.get("details", "")),
                )
            except (ValueError, KeyError, TypeError):
                raise CNIPluginError(
                    plugin_type, -1,
                    f"exit {proc.returncode} without error JSON: {out or proc.stderr.decode()!r}",
                ) from None
        return json.loads(out) if out else None

    # Network configuration lists.
    @staticmethod
    def plugin_config(
        conflist: Mapping[str, Any],
        plugin: Mapping[str, Any],
        rt: RuntimeConf,
        prev_result: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The stdin of one plugin of a list, as libcni builds it."""
        conf = dict(plugin)
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist["cniVersion"]
        if prev_result is not None:
            conf["prevResult"] = prev_result
        runtime_config = {
            cap: rt.capability_args[cap]
            for cap, enabled in (plugin.get("capabilities") or {}).items()
            if enabled and cap in rt.capability_args
        }
        if runtime_config:
            conf["runtimeConfig"] = runtime_config
        return conf

    def add_network_list(self, conflist: Mapping[str, Any], rt: RuntimeConf) -> dict[str, Any]:
        result: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            conf = self.plugin_config(conflist, plugin, rt, result)
            out = self.exec_plugin(plugin["type"], "ADD", conf, rt)
            if out is None:
                raise CNIPluginError(plugin["type"], -1, "ADD printed no result")
            result = out
        if result is None:
            raise CNIPluginError(str(conflist.get("name")), -1, "the list has no plugins")
        return result

    def check_network_list(
        self, conflist: Mapping[str, Any], rt: RuntimeConf, cached: Mapping[str, Any]
    ) -> None:
        for plugin in conflist["plugins"]:
            conf = self.plugin_config(conflist, plugin, rt, cached)
            self.exec_plugin(plugin["type"], "CHECK", conf, rt)

    def del_network_list(
        self, conflist: Mapping[str, Any], rt: RuntimeConf, cached: Mapping[str, Any] | None
    ) -> None:
        for plugin in reversed(conflist["plugins"]):
            conf = self.plugin_config(conflist, plugin, rt, cached)
            self.exec_plugin(plugin["type"], "DEL", conf, rt)


def write_launcher(directory: str | Path, name: str = "contiv-cni") -> Path:
    """Put ``contiv-cni`` into ``directory`` (for a ``CNI_PATH``): a symbolic link to the Go
    binary of this checkout, built first when missing or out of date (``make cni-bin``)."""
    from apps.cni.binary import cni_binary

    target = cni_binary(build=True)
    path = Path(directory) / name
    path.unlink(missing_ok=True)
    path.symlink_to(target)
    return path
