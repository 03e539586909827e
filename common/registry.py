"""Lazy registries: a name in a config or on a command line -> the class that does the work.

One :class:`Registry` per extension point (networks, data-set readers, evaluation
figures, experiment trackers). A decorator records a name; nothing is built until a name is asked for,
and the modules of the extension point's package are imported on the first lookup,
so dropping a decorated module into the package is all it takes. A name registered
twice is an error; an unknown name lists the registered ones; parameters can be
checked against the class's signature before anything is built.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from common.errors import UserError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Names -> classes of one extension point, discovered from one package.

    Args:
        kind: What is registered, for messages (``network``, ``reader``).
        package: The package whose modules hold the registered classes (``networks``).
        base: The class every registered class must derive from.
    """

    def __init__(self, kind: str, package: str, base: type):
        self.kind = kind
        self.package = package
        self.base = base
        self._classes: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator that records a class under ``name``.

        Raises:
            TypeError: When the decorated object is not a subclass of the registry's base.
            ValueError: When ``name`` is registered already by another class.
        """

        def decorator(cls: T) -> T:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"registering {self.kind} {name!r}: must decorate a subclass of {self.base.__name__}")
            existing = self._classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(
                    f"{self.kind} name {name!r} is registered twice: by {existing.__module__}."
                    f"{existing.__qualname__} and by {cls.__module__}.{cls.__qualname__}; rename one")
            self._classes[name] = cls
            return cls

        return decorator

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for tests that register a class of their own)."""
        self._classes.pop(name, None)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._discover()
        return sorted(self._classes)

    def get(self, name: str, where: str = "") -> T:
        """The class registered under ``name``.

        Args:
            name: The name.
            where: What named it (a file and key, an option), the start of the message.

        Raises:
            UserError: For an unknown name, listing the registered ones.
        """
        self._discover()
        cls = self._classes.get(name)
        if cls is None:
            raise UserError(f"{where}unknown {self.kind} {name!r}; registered: {sorted(self._classes)}")
        return cls

    def check_params(self, name: str, params: Mapping[str, Any], where: str, skip: int = 1) -> T:
        """The class under ``name``, after checking that its constructor takes exactly these keyword parameters.

        Args:
            name: The registered name.
            params: The keyword arguments the class will be built with.
            where: What named them (a file and key, an option), the start of the message.
            skip: Leading constructor parameters (after ``self``) that are not ``params``.

        Raises:
            UserError: For an unknown name, or parameters the constructor does not take or lacks.
        """
        cls = self.get(name, where)
        parameters = list(inspect.signature(cls.__init__).parameters.values())[1 + skip:]
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return cls
        accepted = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        required = {p.name for p in parameters if p.default is inspect.Parameter.empty and p.kind is not p.VAR_POSITIONAL}
        problems = []
        unknown, missing = sorted(set(params) - accepted), sorted(required - set(params))
        if unknown:
            problems.append(f"unknown parameter(s) {unknown}")
        if missing:
            problems.append(f"missing parameter(s) {missing}")
        if problems:
            raise UserError(f"{where}{' and '.join(problems)} for {self.kind} {name!r}; it takes {sorted(accepted)}")
        return cls

    def _discover(self) -> None:
        """Import every public module of the package once, so that their decorators run."""
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if module.name.startswith("_"):
                continue
            try:
                importlib.import_module(f"{self.package}.{module.name}")
            except ImportError as exc:
                path = self.package.replace(".", "/")
                raise UserError(f"{path}/{module.name}.py cannot be imported: {exc}") from exc
        self._discovered = True
