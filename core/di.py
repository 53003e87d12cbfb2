"""Composition helpers on dependency-injector: an app is a DeclarativeContainer of plugins.

Example::

    class Container(containers.DeclarativeContainer):
        configs = providers.Dependency(instance_of=dict)
        http = plugin_provider(HTTPPlugin, configs)
        health = plugin_provider(HealthPlugin, configs, http=http)
        kvdb = plugin_provider(KVDBPlugin, configs, health=optional("health", configs, health))

``configs`` is set by the app to the validated sections of the enabled plugins. Tests swap a
plugin with ``container.kvdb.override(providers.Object(other))``.
"""

from __future__ import annotations

from typing import Any

from dependency_injector import containers, providers

from core.plugin import Plugin


class NotEnabledError(LookupError):
    """A plugin was needed as a dependency but is not enabled in the app's YAML."""


class EnabledConfigs(dict[str, Any]):
    """The validated configs of the enabled plugins; a missing one names the plugin."""

    def __missing__(self, name: str) -> Any:
        raise NotEnabledError(
            f"plugin {name!r} is needed by another enabled plugin but is not enabled "
            f"(add it to 'plugins:')"
        )


def plugin_provider(cls: type[Plugin], configs: Any, **deps: Any) -> providers.Singleton[Any]:
    """A singleton provider building ``cls`` with its own config section and ``deps``."""
    return providers.Singleton(cls, config=configs.provided[cls.name], **deps)


def _if_enabled(configs: dict[str, Any], name: str, provider: Any) -> Any:
    return provider() if name in configs else None


def optional(name: str, configs: Any, provider: Any) -> providers.Callable[Any]:
    """A dependency that is the plugin when ``name`` is enabled, else None."""
    return providers.Callable(_if_enabled, configs, name, providers.Delegate(provider))


def builtin_plugins(container: type[containers.DeclarativeContainer]) -> dict[str, tuple[str, type[Plugin]]]:
    """Plugin name -> (provider attribute, class) for every plugin provider of ``container``."""
    out: dict[str, tuple[str, type[Plugin]]] = {}
    for attr, provider in container.cls_providers.items():
        cls = getattr(provider, "cls", None)
        if isinstance(provider, providers.Singleton) and isinstance(cls, type) and issubclass(cls, Plugin):
            out[cls.name] = (attr, cls)
    return out
