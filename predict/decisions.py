"""The decision rule: decide the top-1 class when it is sure enough, else abstain.

The rule: an image's top-1 class c (the highest probability; on ties the lower class
index) is **decided** when its probability is at least c's threshold; otherwise the
decision is :data:`ABSTAIN`. Without thresholds every top-1 class is decided.

Thresholds come from

- an evaluation of the same model (:meth:`Thresholds.from_evaluation`): the per-class
  thresholds it computed on labelled data for a target precision or recall
  (``--operating-point output/eval/<name> --precision 0.99``). A class whose target
  was unreachable there, or that had no samples, has no threshold: its top-1
  predictions **always abstain** (the evaluation could not show it reaching the
  target, so nothing is decided for it); the log, the record and the report name
  those classes. An evaluation of another model (another sha256) is refused;
- a YAML file (:meth:`Thresholds.from_file`, ``--threshold FILE``) mapping every class
  name to a threshold in [0, 1], or to ``null`` (never decided);
- a mapping in Python (:meth:`Thresholds.from_mapping`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import FileProblems, UserError
from common.files import file_sha256, read_yaml
from common.paths import display_path
from common.results import read_operating_points

ABSTAIN = "abstain"
"""The decision when the top-1 probability is below its class's threshold."""

RULE = "the top-1 class is decided when its probability is >= its class's threshold (null: never), else abstain"
"""The rule in one line, as recorded."""


class ThresholdFileError(FileProblems):
    """A ``--threshold`` file has problems, each named with its key."""

    def __init__(self, problems: list[str]):
        super().__init__(problems, "the threshold file")


@dataclass(frozen=True)
class Thresholds:
    """Per-class thresholds of the decision rule.

    Attributes:
        class_names: The classes, in the model's order.
        values: Per class, the threshold; None: never decided (always abstain).
        source: Where they came from (recorded in the output): ``kind`` (``evaluation``,
            ``file``, ``mapping``) and its details.
        model_sha256: The model they were measured for (from an evaluation), else None.
    """

    class_names: tuple[str, ...]
    values: tuple[float | None, ...]
    source: dict[str, Any] = field(default_factory=dict)
    model_sha256: str | None = None

    @classmethod
    def from_evaluation(cls, folder: Path | str, precision: float | None = None,
                        recall: float | None = None) -> Thresholds:
        """The thresholds an evaluation computed for a target precision or recall (give exactly one).

        Raises:
            UserError: As :func:`common.results.read_operating_points`, or when not
                exactly one target is given.
        """
        if (precision is None) == (recall is None):
            raise UserError("an operating point needs exactly one target: --precision P or --recall R")
        kind, target = ("precision", precision) if precision is not None else ("recall", recall)
        points = read_operating_points(Path(folder), kind, float(target))
        source = {"kind": "evaluation", "evaluation": points.evaluation, "target": {kind: points.target},
                  "unreachable": [name for name, value in zip(points.class_names, points.thresholds) if value is None]}
        return cls(tuple(points.class_names), tuple(points.thresholds), source, points.model_sha256)

    @classmethod
    def from_file(cls, path: Path | str, class_names: list[str]) -> Thresholds:
        """A YAML mapping of every class name to a threshold in [0, 1] or ``null``.

        Raises:
            UserError: When the file is missing or not a YAML mapping.
            ThresholdFileError: Naming every problem with its key: a class missing,
                a name that is no class, a value that is not a number in [0, 1].
        """
        mapping = read_yaml(Path(path), "class names to thresholds")
        regular = Path(path).is_file()  # not a pipe (`--threshold <(...)`), which cannot be read twice
        source = {"kind": "file", "file": display_path(Path(path)),
                  "sha256": file_sha256(Path(path)) if regular else None}
        return cls.from_mapping(mapping, class_names, source, display_path(Path(path)))

    @classmethod
    def from_mapping(cls, mapping: Mapping[Any, Any], class_names: list[str], source: dict[str, Any] | None = None,
                     shown: str = "thresholds") -> Thresholds:
        """Thresholds from ``{class name: threshold or None}`` naming every class.

        Raises:
            ThresholdFileError: As :meth:`from_file`.
        """
        if not isinstance(mapping, Mapping):
            raise ThresholdFileError([f"{shown}: expected a mapping of class name to threshold, got "
                                      f"{type(mapping).__name__}"])
        named: dict[str, Any] = {}
        problems = []
        for key, value in mapping.items():
            if str(key) in named:
                problems.append(f"{shown}: {key!r}: names the class {str(key)!r} a second time")
            named[str(key)] = value
        problems += [f"{shown}: {key}: not a class of the model (its classes: {class_names}; quote names that YAML "
                    "would read as numbers or booleans)" for key in named if key not in class_names]
        problems += [f"{shown}: {name}: missing; every class needs a threshold (null: never decided)"
                     for name in class_names if name not in named]
        for key, value in named.items():
            if value is not None and not _is_threshold(value):
                problems.append(f"{shown}: {key}: {value!r} is not a number in [0, 1] (or null)")
        if problems:
            raise ThresholdFileError(problems)
        values = tuple(None if named[name] is None else float(named[name]) for name in class_names)
        return cls(tuple(class_names), values, source or {"kind": "mapping"})

    def check_model(self, class_names: list[str], sha256: str, model: str) -> None:
        """Refuse thresholds measured for another model, or for other classes.

        Raises:
            UserError: Naming both models' sha256, or both class lists.
        """
        if self.model_sha256 is not None and self.model_sha256 != sha256:
            raise UserError(f"the operating point comes from {self.source.get('evaluation')}, an evaluation of "
                            f"another model (sha256 {self.model_sha256[:12]}...), but {model} has sha256 "
                            f"{sha256[:12]}...; thresholds hold only for the model they were measured on. Evaluate "
                            f"this model and take its operating point: pipenv run evaluate --model {model} --list ...")
        if list(self.class_names) != list(class_names):
            raise UserError(f"the thresholds name the classes {list(self.class_names)}, but {model} has "
                            f"{list(class_names)}")

    def array(self) -> np.ndarray:
        """Per-class thresholds ``(K,)`` float64 (exact, as recorded); ``inf`` where a class is never decided."""
        return np.array([math.inf if v is None else v for v in self.values], dtype=np.float64)

    def to_record(self) -> dict[str, Any]:
        """What the output's record file holds: the rule, where the thresholds came from, and each class's."""
        return {"rule": RULE, "source": self.source,
                "thresholds": {name: value for name, value in zip(self.class_names, self.values)}}


def no_thresholds_record() -> dict[str, Any]:
    """The record of a run without thresholds: every top-1 class decided."""
    return {"rule": "every top-1 class is decided (no thresholds)", "source": None, "thresholds": None}


def decide(probabilities: np.ndarray, thresholds: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The top-1 class of each row and whether it is decided.

    Args:
        probabilities: ``(B, K)`` class probabilities.
        thresholds: ``(K,)`` per-class thresholds (``inf``: never), or None (all decided).

    Returns:
        ``(top1, decided)``: ``(B,)`` class indices (the first on ties) and ``(B,)`` booleans.
    """
    top1 = probabilities.argmax(axis=1)
    if thresholds is None:
        return top1, np.ones(len(top1), dtype=bool)
    best = probabilities[np.arange(len(top1)), top1]
    return top1, best >= thresholds[top1]


def _is_threshold(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
