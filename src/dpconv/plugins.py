"""The plugin manager: built-in plugins, the ``dpconv`` entry points, a block list.

Plugins are loaded on first need (the first format lookup, field lookup or CLI
start), never at ``import dpconv``. Set ``DPCONV_DISABLE_PLUGINS=name1,name2``
to skip broken third-party plugins by entry-point name.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points
from typing import Any

import pluggy

from dpconv import hookspecs
from dpconv.errors import PluginError

#: Modules of the built-in plugins, registered like any third-party plugin.
BUILTIN_PLUGINS = ("dpconv.formats", "dpconv.cli.builtin_commands", "dpconv.trainer.plugin", "dpconv.md.plugin")

#: Built-ins that only add CLI commands: imported when the CLI asks for commands, so that
#: library use (reading formats) never imports click or the command modules.
_COMMAND_ONLY = ("dpconv.cli.builtin_commands", "dpconv.trainer.plugin", "dpconv.md.plugin")


class _LazyCommands:
    """Stands for a command-only built-in plugin until its commands are needed."""

    def __init__(self, module: str) -> None:
        self.__name__ = module

    @hookspecs.hookimpl
    def dpconv_register_commands(self, cli: Any) -> None:
        import importlib

        importlib.import_module(self.__name__).dpconv_register_commands(cli=cli)


_pm: pluggy.PluginManager | None = None
_fields_loaded = False


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("DPCONV_DISABLE_PLUGINS", "").split(",") if n.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created and loaded on first call."""
    global _pm
    if _pm is not None:
        return _pm
    import importlib

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        plugin = _LazyCommands(name) if name in _COMMAND_ONLY else importlib.import_module(name)
        pm.register(plugin, name=name)
    blocked = _disabled()
    for ep in entry_points(group=hookspecs.PROJECT):
        if ep.name in blocked or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken plugin must not break dpconv
            raise PluginError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}; "
                f"set DPCONV_DISABLE_PLUGINS={ep.name} to skip it"
            ) from exc
        pm.register(plugin, name=ep.name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from exc
    _pm = pm
    return pm


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin object at run time (tests, notebooks); resets the format registry."""
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    pm.check_pending()
    from dpconv import registry

    registry.reset()
    global _fields_loaded
    _fields_loaded = False


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin`."""
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    from dpconv import registry

    registry.reset()


def list_plugins() -> list[dict[str, str]]:
    """Name, kind (built-in or entry point) and hooks of each registered plugin."""
    pm = get_plugin_manager()
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = pm.get_plugin(name)
        kind = "built-in" if name in BUILTIN_PLUGINS else "plugin"
        out.append({"name": name, "kind": kind, "hooks": ", ".join(hooks), "module": getattr(dist, "__name__", "")})
    return out


def ensure_fields_loaded() -> None:
    """Run the ``dpconv_register_fields`` hooks once."""
    global _fields_loaded
    if _fields_loaded:
        return
    _fields_loaded = True
    from dpconv.schema import register_field

    get_plugin_manager().hook.dpconv_register_fields(register=register_field)
