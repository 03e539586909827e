"""The launch form: its fields, the ``train`` command line it stands for, and that line's validation.

Each field is one command-line option or one config override (:data:`FIELDS`); drop-downs
are filled from what exists (:func:`choices`). :func:`command_from_form` turns a submitted
form into the argument list of ``python -m train`` (a list, never a shell string: a value
cannot become another option or a command), and :func:`validate` runs training's own
validator on it (``python -m train ... --print-config`` in a process), so the studio never
does what the command line cannot. Problems come back next to the field whose key they name.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import UserError
from common.files import read_yaml
from common.paths import PROJECT_ROOT, data_dir, shared_configs_dir
from common.run_folder import RunFolder, runs_root
from studio.security import child_environment

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""A run name: what ``train --name`` takes."""
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
"""A dotted config key of an override."""
OPTIMIZERS = ("sgd", "adamw")
"""``optim.name`` choices (``train.config.OPTIMIZERS``; a test keeps them equal)."""
SCHEDULES = ("cosine", "step", "constant")
"""``schedule.name`` choices (``train.config.SCHEDULES``)."""
TRACKERS = ("tensorboard", "mlflow", "wandb")
"""``log.trackers`` choices (the tracker registry's names)."""
VALIDATE_SECONDS = 120
MAX_OVERRIDES = 50
MAX_OVERRIDES_TEXT = 10_000
MAX_FIELD_TEXT = 1_000
"""Longest value of any other field (a number, a name)."""


@dataclass(frozen=True)
class Field:
    """One field of the launch form.

    Attributes:
        name: The form field's name.
        label: What the page shows.
        kind: ``choice``, ``int``, ``float``, ``text``, ``flag`` (a checkbox) or ``multi`` (checkboxes).
        key: The config key it overrides (``key=value``), or None.
        option: The command-line option it sets (``--config``), or None.
        help: One line under the field.
    """

    name: str
    label: str
    kind: str
    key: str | None = None
    option: str | None = None
    help: str = ""


FIELDS = (
    Field("name", "Run name", "text", option="--name", help="letters, digits, '.', '_', '-'; the folder is <name>-<time>"),
    Field("recipe", "Recipe", "choice", option="--config", help="a training config in train/configs/"),
    Field("dataset", "Data set", "choice", key="data.dataset", help="a data set folder in data/"),
    Field("network", "Network", "choice", key="network", help="a network config in shared_configs/networks/"),
    Field("dev", "Dev split only (a quick check)", "flag", option="--dev"),
    Field("epochs", "Epochs", "int", key="epochs"),
    Field("batch_size", "Batch size", "int", key="batch_size"),
    Field("lr", "Learning rate", "float", key="optim.lr"),
    Field("optimiser", "Optimiser", "choice", key="optim.name"),
    Field("schedule", "Schedule", "choice", key="schedule.name"),
    Field("rotation", "Augment: rotation (degrees)", "float", key="augment.rotation"),
    Field("hflip", "Augment: horizontal flip probability", "float", key="augment.hflip"),
    Field("patience", "Early stopping patience (epochs, 0: off)", "int", key="early_stopping.patience"),
    Field("checkpoint_minutes", "Checkpoint every (minutes)", "float", key="checkpoint.every_minutes"),
    Field("trackers", "Trackers", "multi", key="log.trackers"),
    Field("overrides", "Other overrides", "text", help="one key=value per line, e.g. optim.weight_decay=0.01"),
)
FIELD_BY_NAME = {f.name: f for f in FIELDS}


def recipes() -> list[str]:
    """Training configs in ``train/configs/`` (a sweep's search space is not one)."""
    folder = PROJECT_ROOT / "train" / "configs"
    return sorted(path.name for path in folder.glob("*.yaml") if path.stem != "space")


def datasets() -> list[str]:
    """Data sets in the data folder (folders with ``classes.txt``), and the bundled ``digits``."""
    found = {path.parent.name for path in data_dir().glob("*/classes.txt")}
    return sorted(found | {"digits"})


def networks() -> list[str]:
    """Network configs in ``shared_configs/networks/``."""
    return sorted(path.stem for path in (shared_configs_dir() / "networks").glob("*.yaml"))


def choices() -> dict[str, list[str]]:
    """The drop-downs' options, read now (a data set added meanwhile shows up)."""
    return {"recipe": recipes(), "dataset": datasets(), "network": networks(), "optimiser": list(OPTIMIZERS),
            "schedule": list(SCHEDULES), "trackers": list(TRACKERS)}


@dataclass
class Launch:
    """A launch form, checked.

    Attributes:
        values: The submitted values (what the form shows again).
        arguments: The arguments after ``python -m train``.
        errors: ``field name -> problem`` (``""``: a problem of the whole form).
    """

    values: dict[str, object]
    arguments: list[str]
    errors: dict[str, str]

    @property
    def command(self) -> str:
        """The equivalent command line."""
        return shlex.join(["pipenv", "run", "train", *self.arguments])


def command_from_form(form: Mapping[str, object], taken: set[str] | None = None) -> Launch:
    """Check each field's form and turn the form into ``train``'s arguments.

    Args:
        form: Field name -> submitted text (``trackers``: a list).
        taken: Run names already in use (queued jobs); existing run folders are checked too.
    """
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    options = choices()
    arguments: list[str] = []
    for field in FIELDS:
        raw = form.get(field.name)
        value, problem = _field_value(field, raw, options)
        values[field.name] = raw if problem else value
        if problem:
            errors[field.name] = problem
        elif not (value is None or value is False or value == "") and (value != [] or field.kind == "multi"):
            arguments += _arguments(field, value)
    arguments.append("--no-progress")  # the job's log is a file: lines, not a progress bar
    name = str(values.get("name") or "")
    if "name" not in errors and name in (taken or set()) | _run_names():
        errors["name"] = f"a run named {name!r} exists or is queued; choose another name"
    return Launch(values, arguments, errors)


def _field_value(field: Field, raw: object, options: dict[str, list[str]]) -> tuple[object, str | None]:
    """``(value, None)`` or ``(None, problem)`` for one field."""
    if field.kind == "multi":
        if raw is None:
            return None, None  # not on the form: the recipe's value
        picked = [str(item) for item in (raw if isinstance(raw, list) else [raw])]  # none ticked: none
        unknown = [item for item in picked if item not in options[field.name]]
        return (None, f"unknown {unknown}; choose from {options[field.name]}") if unknown else (picked, None)
    text = "" if raw is None else str(raw).strip()
    if field.kind == "flag":
        return text in ("on", "true", "1"), None
    if not text:
        return (None, "required") if field.name == "name" else (None, None)
    if field.name != "overrides" and len(text) > MAX_FIELD_TEXT:
        return None, f"at most {MAX_FIELD_TEXT:,} characters"
    if "\x00" in text or ("\n" in text and field.name != "overrides"):
        return None, "one line, without control characters"
    checks = {"choice": _check_choice, "int": _check_int, "float": _check_float, "text": _check_text}
    return checks[field.kind](field, text, options)


def _check_choice(field: Field, text: str, options: dict[str, list[str]]) -> tuple[object, str | None]:
    if text not in options[field.name]:
        return None, f"{text!r} is not one of {options[field.name]} (was it deleted?)"
    return text, None


def _check_int(field: Field, text: str, options: dict[str, list[str]]) -> tuple[object, str | None]:
    try:
        return int(text), None
    except ValueError:
        return None, f"a whole number, got {text!r}"


def _check_float(field: Field, text: str, options: dict[str, list[str]]) -> tuple[object, str | None]:
    try:
        value = float(text)
    except ValueError:
        return None, f"a number, got {text!r}"
    return (value, None) if value == value and abs(value) != float("inf") else (None, f"a finite number, got {text!r}")


def _check_text(field: Field, text: str, options: dict[str, list[str]]) -> tuple[object, str | None]:
    if field.name == "name":
        if not NAME.match(text) or len(text) > 100:
            return None, "letters, digits, '.', '_' and '-' only, starting with a letter or digit (no '/')"
        return text, None
    if len(text) > MAX_OVERRIDES_TEXT:
        return None, f"at most {MAX_OVERRIDES_TEXT:,} characters"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_OVERRIDES:
        return None, f"at most {MAX_OVERRIDES} overrides"
    bad = [line for line in lines if "=" not in line or not KEY.match(line.split("=", 1)[0].strip())]
    if bad:
        return None, f"not key=value: {bad[0]!r} (one dotted key=value per line)"
    return [f"{k.strip()}={v.strip()}" for k, v in (line.split("=", 1) for line in lines)], None


def _arguments(field: Field, value: object) -> list[str]:
    """The command-line items of one checked field."""
    if field.name == "overrides":
        return list(value)  # type: ignore[arg-type]
    if field.kind == "flag":
        return [field.option] if value else []
    if field.option == "--config":
        return [field.option, f"train/configs/{value}"]
    if field.option:
        return [field.option, str(value)]
    if field.kind == "multi":
        return [f"{field.key}=[{','.join(value)}]"]  # type: ignore[arg-type]
    return [f"{field.key}={value}"]


def _run_names() -> set[str]:
    """Names of existing runs (the folder name without its ``-<date>-<time>``)."""
    return {re.sub(r"-\d{8}-\d{6}(-\d+)?$", "", path.name) for path in runs_root().glob("*") if path.is_dir()}


def validate(launch: Launch) -> Launch:
    """Run training's validator on the command (``python -m train ... --print-config``); its error goes next to
    the field whose key or option it names (else to the whole form)."""
    if launch.errors:
        return launch
    try:
        result = subprocess.run([sys.executable, "-m", "train", *launch.arguments, "--print-config"],
                                cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=VALIDATE_SECONDS,
                                env=child_environment())
    except subprocess.TimeoutExpired:
        launch.errors[""] = f"training's validator did not answer within {VALIDATE_SECONDS} s; try again"
        return launch
    if result.returncode != 0:
        message = "\n".join(line for line in result.stderr.splitlines() if line.strip())[-2000:] or "refused"
        launch.errors[_field_of(message)] = message.removeprefix("error: ")
    return launch


def _field_of(message: str) -> str:
    """The field a validator's message is about: the first field whose key or option it names."""
    for field in sorted(FIELDS, key=lambda f: -len(f.key or f.option or "")):
        if (field.key and re.search(rf"(?<![\w.]){re.escape(field.key)}(?![\w])", message)) or \
                (field.option and field.option in message):
            return field.name
    return "overrides" if re.search(r"\b[a-z_]+\.[a-z_]+\b:", message) else ""


def form_from_run(run_dir: Path) -> dict[str, object]:
    """A launch form filled from a run (clone: run again with changes): its recipe values as overrides.

    Raises:
        UserError: When the run's config cannot be read.
    """
    folder = RunFolder(run_dir)
    config = folder.read_run_config()
    manifest = folder.read_manifest()
    form: dict[str, object] = {"name": f"{_base_name(folder.name)}-again", "dev": "on" if manifest.dev else ""}
    for field in FIELDS:
        if field.key and field.kind != "multi":
            value = config.get(field.key)
            if value is not None:
                form[field.name] = str(value)
    form["trackers"] = list(config.get("log.trackers") or [])
    form["recipe"] = _recipe_of(manifest.command)
    return form


def _base_name(folder: str) -> str:
    return re.sub(r"-\d{8}-\d{6}(-\d+)?$", "", folder)


def _recipe_of(command: list[str]) -> str:
    """The recipe file a run was started with (``--config``), when it is one of train/configs/."""
    for option, value in zip(command, command[1:]):
        if option == "--config" and Path(value).name in recipes():
            return Path(value).name
    return "default.yaml"


def recipe_defaults(recipe: str) -> dict[str, object]:
    """Values a recipe sets, by field name (shown as the fields' placeholders)."""
    if recipe not in recipes():
        return {}
    try:
        data = read_yaml(PROJECT_ROOT / "train" / "configs" / recipe, "training config")
    except UserError:
        return {}
    out: dict[str, object] = {}
    for field in FIELDS:
        value: object = data
        for part in (field.key or "").split(".") if field.key else []:
            value = value.get(part) if isinstance(value, dict) else None
        if field.key and value is not None and not isinstance(value, (dict, list)):
            out[field.name] = value
    return out

