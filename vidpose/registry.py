"""Registries mapping config names to classes or factory functions.

Pure Python: importing this module imports neither torch nor hydra. A registry
imports its built-in modules the first time it is looked up, so no
``register_all_modules()`` call exists. Out-of-tree code is imported through
``load_plugins`` (config key ``plugins:``) or the ``vidpose.plugins`` entry point.

Config nodes are mappings ``{name: <key>, **kwargs}``. Runtime facts (channels,
number of joints, the heatmap geometry, ...) are passed by the caller as keyword
arguments to :meth:`Registry.build` and must never be written in a config file.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "Registry",
    "RegistryError",
    "BACKBONES",
    "HEADS",
    "REFINERS",
    "FLOWS",
    "TARGETS",
    "LOSSES",
    "DATASETS",
    "ALL_REGISTRIES",
    "load_plugins",
    "to_plain",
]

ENTRY_POINT_GROUP = "vidpose.plugins"


class RegistryError(KeyError, TypeError):
    """A lookup or build failed; the message names the group, the key and what was expected."""

    def __str__(self) -> str:  # KeyError would otherwise print the message with quotes
        return str(self.args[0]) if self.args else ""


def to_plain(value: Any) -> Any:
    """Convert OmegaConf containers (if any) to plain dicts/lists, recursively."""
    omegaconf = sys.modules.get("omegaconf")
    if omegaconf is not None and isinstance(value, (omegaconf.DictConfig, omegaconf.ListConfig)):
        return omegaconf.OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    return value


class Registry:
    """Maps explicit string keys to classes or factory functions of one group."""

    def __init__(self, group: str, builtins: Iterable[str] = ()) -> None:
        self.group = group
        self._builtins = tuple(builtins)
        self._entries: dict[str, Callable[..., Any]] = {}
        self._builtins_loaded = False

    # registration -------------------------------------------------------------------------
    def register(self, key: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator registering a class or factory under ``key`` (a duplicate key is an error)."""
        if not isinstance(key, str) or not key:
            raise RegistryError(f"{self.group}: a registry key must be a non-empty string, got {key!r}")

        def decorator(obj: Callable[..., Any]) -> Callable[..., Any]:
            existing = self._entries.get(key)
            if existing is not None and existing is not obj:
                raise RegistryError(
                    f"{self.group}: key {key!r} is already registered to "
                    f"{_qualname(existing)}; cannot register {_qualname(obj)} under the same key"
                )
            self._entries[key] = obj
            return obj

        return decorator

    # lookup -------------------------------------------------------------------------------
    def _ensure_builtins(self) -> None:
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for module in self._builtins:
            _import_module_or_package(module)
        _load_entry_point_plugins()

    def names(self) -> list[str]:
        """Sorted list of registered keys."""
        self._ensure_builtins()
        return sorted(self._entries)

    def __contains__(self, key: object) -> bool:
        self._ensure_builtins()
        return key in self._entries

    def get(self, key: str) -> Callable[..., Any]:
        """Return the class or factory registered under ``key``; unknown keys name the closest one."""
        self._ensure_builtins()
        try:
            return self._entries[key]
        except KeyError:
            known = sorted(self._entries)
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise RegistryError(
                f"{self.group}: unknown name {key!r}.{hint} Known {self.group}: {', '.join(known) or '(none)'}"
            ) from None

    def build(self, node: Mapping[str, Any] | str, *, path: str | None = None, **runtime: Any) -> Any:
        """Build the entry a config node names: ``{name: key, **kwargs}`` plus runtime kwargs.

        Keyword arguments from the node are checked against the signature: a misspelled key is
        an error naming the config path and the accepted parameters. Runtime kwargs are passed
        only where the signature accepts them, and a node may not set one itself.
        """
        where = path or self.group
        if isinstance(node, str):
            node = {"name": node}
        node = to_plain(node)
        if not isinstance(node, Mapping):
            raise RegistryError(f"{where}: expected a mapping with a 'name' key, got {type(node).__name__}")
        if "name" not in node:
            raise RegistryError(f"{where}: missing 'name' (one of: {', '.join(self.names())})")
        kwargs = {k: v for k, v in node.items() if k != "name"}
        try:
            target = self.get(node["name"])
        except RegistryError as exc:
            raise RegistryError(f"{where}.name: {exc}") from None
        params, accepts_var_kw = _signature(target)

        clash = sorted(set(kwargs) & set(runtime))
        if clash:
            raise RegistryError(
                f"{where}: {', '.join(clash)} is set at run time by vidpose and must not appear in the config"
            )
        if not accepts_var_kw:
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                accepted = [p for p in params if p not in runtime]
                suggestions = []
                for k in unknown:
                    close = difflib.get_close_matches(k, accepted, n=1)
                    suggestions.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
                raise RegistryError(
                    f"{where}: unknown argument {', '.join(suggestions)} for {self.group} "
                    f"{node['name']!r} ({_qualname(target)}). Accepted: {', '.join(accepted) or '(none)'}"
                )
            runtime = {k: v for k, v in runtime.items() if k in params}
        required = [
            name
            for name, p in params.items()
            if p.default is inspect.Parameter.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in kwargs
            and name not in runtime
        ]
        if required:
            raise RegistryError(
                f"{where}: {self.group} {node['name']!r} needs {', '.join(required)}, which the config does not set"
            )
        return target(**kwargs, **runtime)

    def describe(self) -> list[tuple[str, str]]:
        """(key, qualified name) pairs, sorted by key."""
        return [(k, _qualname(self._entries[k])) for k in self.names()]

    def __repr__(self) -> str:
        return f"Registry({self.group!r}, {len(self._entries)} entries)"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _signature(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], bool]:
    sig = inspect.signature(target)
    params = {
        name: p
        for name, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"
    }
    accepts_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    return params, accepts_var_kw


def _import_module_or_package(name: str) -> None:
    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        for info in pkgutil.iter_modules(module.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{name}.{info.name}")


_entry_points_loaded = False


def _load_entry_point_plugins() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not pass unnoticed
            raise ImportError(f"vidpose plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from exc


def load_plugins(modules: Iterable[str] | None) -> list[str]:
    """Import out-of-tree modules that register entries (config key ``plugins:``)."""
    loaded = []
    for name in modules or ():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"plugins: could not import {name!r} ({exc}). Install the package or fix the module name."
            ) from exc
        loaded.append(name)
    return loaded


BACKBONES = Registry("backbones", builtins=["vidpose.models.backbones"])
HEADS = Registry("heads", builtins=["vidpose.models.heads"])
REFINERS = Registry("refiners", builtins=["vidpose.models.refiners"])
FLOWS = Registry("flows", builtins=["vidpose.models.flow"])
TARGETS = Registry("targets", builtins=["vidpose.heatmaps.targets"])
LOSSES = Registry("losses", builtins=["vidpose.losses"])
DATASETS = Registry(
    "datasets", builtins=["vidpose.data.posetrack", "vidpose.data.jhmdb", "vidpose.data.synthetic"]
)

ALL_REGISTRIES = (BACKBONES, HEADS, REFINERS, FLOWS, TARGETS, LOSSES, DATASETS)


def main() -> None:
    """Print every registry and its entries."""
    for registry in ALL_REGISTRIES:
        try:
            rows = registry.describe()
        except ImportError as exc:
            print(f"{registry.group}: built-ins failed to import: {exc}")
            continue
        print(f"{registry.group} ({len(rows)})")
        for key, target in rows:
            print(f"  {key:<24} {target}")


if __name__ == "__main__":
    # `python -m` runs this file as __main__, a second copy of the module: built-ins register
    # into the importable vidpose.registry, so list that one.
    import vidpose.registry as _registry

    _registry.main()
