"""Modules that remember how they were built: ``module.config()`` is the ``class_path`` /
``init_args`` dict of the outermost constructor call (nested modules and dataclasses included),
so a checkpoint can rebuild a network that was made in Python, and ``from_config`` builds one
back through jsonargparse, as the CLI would."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any

from torch import nn


def _plain(value: Any) -> Any:
    if isinstance(value, Configurable):
        return value.config()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Configurable:
    """Mixin: records the arguments of the outermost ``__init__`` call of the instance."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args: Any, **kw: Any) -> None:
            if "_init_config" not in self.__dict__:
                bound = signature.bind(self, *args, **kw)
                bound.apply_defaults()
                arguments = dict(bound.arguments)
                arguments.pop(next(iter(signature.parameters)))
                self.__dict__["_init_config"] = (type(self), arguments)
            init(self, *args, **kw)

        cls.__init__ = recording_init

    def config(self) -> dict:
        """``{"class_path": ..., "init_args": {...}}`` of the constructor call."""
        cls, arguments = self.__dict__["_init_config"]
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}",
                "init_args": {k: _plain(v) for k, v in arguments.items()}}


def from_config(config: dict, base: type = nn.Module) -> Any:
    """Instantiate a ``class_path`` / ``init_args`` dict (a subclass of ``base``) with jsonargparse."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "module", fail_untyped=False)
    parsed = parser.parse_object({"module": config})
    return parser.instantiate_classes(parsed).module
