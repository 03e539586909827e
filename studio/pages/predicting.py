"""The predict page: a model, some images and an operating point in; each image's decision and top classes out.

It runs :class:`predict.Classifier`, the Python API of ``pipenv run predict`` (the same decoder,
session settings and decision rule), in a thread. An operating point's thresholds come from
:meth:`predict.decisions.Thresholds.from_evaluation`, as ``pipenv run predict --operating-point
output/eval/<name> --precision P`` builds them; thresholds measured on another model are refused.

Images are a data set's list (its first images) or paths in a data set, and uploads. An upload
must be at most :data:`MAX_UPLOAD_BYTES` and decode as an image through :mod:`common.images`
(which refuses decompression bombs), in one of :data:`UPLOAD_SUFFIXES`' formats; one that does
not is named with why and leaves nothing behind. Accepted uploads are kept under
``output/studio/uploads/<time>-<random>/`` with names made here (never the client's path).
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from PIL import UnidentifiedImageError

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from common.errors import UserError
from common.images import DECODE_ERRORS, UnreadableImageError, decode_image, open_image
from common.integrity import recorded_digests
from common.lists import load_dataset, read_split, resolve_image
from common.paths import data_dir, display_path, model_dir, output_dir
from common.provenance import stamp
from common.results import OPERATING_KINDS, read_evaluation_record
from predict.classifier import Classifier, Prediction
from predict.decisions import ABSTAIN, Thresholds
from studio.render import page
from studio.resolver import url_for_file
from studio.security import state_changing

MAX_UPLOAD_BYTES = 20 * 2**20
"""Largest uploaded image (bytes); how many files one form may carry is the app's ``form_limits``."""

MAX_LISTED = 64
"""Most images taken from a data set in one prediction (its list's first images, or paths typed in)."""

SHOWN_CLASSES = 3
"""Classes shown per image, most probable first."""

CHECK_SIZE = 256
"""An upload is decoded (at reduced scale where the format allows) to at most this square to prove it is an image."""

UPLOAD_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp",
                   "TIFF": ".tif"}
"""Image formats an upload may have (Pillow's name -> the suffix it is saved with): those the studio serves."""

MAX_STEM = 60
"""Longest part of a saved upload's name taken from the client's file name."""


def uploads_root() -> Path:
    """Where accepted uploads are kept: ``<output>/studio/uploads``."""
    return output_dir() / "studio" / "uploads"


def plain_name(name: str, what: str) -> str:
    """``name`` when it is a plain file or folder name (no ``/``, ``\\``, leading dot or control character).

    Raises:
        UserError: Otherwise, naming ``what`` it should have named.
    """
    if (not name or name.startswith(".") or "/" in name or "\\" in name
            or any(ord(c) < 32 or c == "\x7f" for c in name)):
        raise UserError(f"{name!r} is not the name of {what}")
    return name


def model_names() -> list[str]:
    """The models of the model folder (``<name>.onnx``), newest first."""
    folder = model_dir()
    found = [p for p in folder.glob("*.onnx") if p.is_file() and not p.name.startswith(".")] if folder.is_dir() else []
    return [p.name for p in sorted(found, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)]


def model_digest(path: Path) -> str | None:
    """The model's sha256 from its sidecar (None without a readable one: the file is not hashed for a page)."""
    try:
        digests = recorded_digests(path)
    except UserError:
        return None
    return digests[0] if digests else None


def evaluations_of(digest: str | None) -> list[dict[str, str]]:
    """The evaluations under ``output/eval`` of the model with sha256 ``digest`` (every one when it is unknown)."""
    root = output_dir() / "eval"
    found = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            record = read_evaluation_record(folder)
        except UserError:
            continue
        if record is not None and (digest is None or record.model_sha256 == digest):
            found.append({"name": folder.name, "model": record.model, "list": record.list})
    return found


def dataset_lists() -> dict[str, list[str]]:
    """``data set name -> its list names`` of the data folder's data sets (those with a ``classes.txt``)."""
    root = data_dir()
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.name.startswith(".") and (folder / "classes.txt").is_file():
            found[folder.name] = sorted(p.stem for p in (folder / "lists").glob("*.txt"))
    return found


@dataclass
class Chosen:
    """What the form asked for (every field as text, shown again when something is wrong)."""

    model: str = ""
    evaluation: str = ""
    target_kind: str = "precision"
    target: str = ""
    dataset: str = ""
    split: str = ""
    count: str = "16"
    paths: str = ""

    @classmethod
    def from_form(cls, form: Any) -> Chosen:
        """The fields of a submitted form (uploads aside; a field not sent keeps its default)."""
        return cls(**{name: str(form.get(name)).strip() for name in cls.__dataclass_fields__
                      if isinstance(form.get(name), str)})


def form_context(chosen: Chosen) -> dict[str, Any]:
    """What :file:`predict.html`'s form shows: the models, the chosen model's evaluations, the data sets."""
    models = model_names()
    if chosen.model not in models:
        chosen.model = models[0] if models else ""
    digest = model_digest(model_dir() / chosen.model) if chosen.model else None
    lists = dataset_lists()
    return {"chosen": asdict(chosen), "models": models, "evaluations": evaluations_of(digest) if models else [],
            "filtered": digest is not None, "datasets": lists, "splits": sorted({s for v in lists.values() for s in v}),
            "kinds": OPERATING_KINDS, "max_upload_mib": MAX_UPLOAD_BYTES // 2**20, "max_listed": MAX_LISTED,
            "model_folder": display_path(model_dir()), "formats": sorted(set(UPLOAD_SUFFIXES))}


async def predict_form(request: Request) -> Response:
    """GET /predict: the form (``?model=<name>.onnx`` chooses the model and lists its evaluations)."""
    chosen = Chosen(model=request.query_params.get("model", ""))
    context = await asyncio.to_thread(form_context, chosen)
    return page(request, "predict.html", form_limits=request.app.state.form_limits, **context)


def thresholds_of(chosen: Chosen) -> Thresholds | None:
    """The operating point's thresholds (:meth:`Thresholds.from_evaluation`), or None without one.

    Raises:
        UserError: For an evaluation that is not a plain name under ``output/eval``, a target that is not a
            number, or what :meth:`Thresholds.from_evaluation` refuses.
    """
    if not chosen.evaluation:
        return None
    folder = output_dir() / "eval" / plain_name(chosen.evaluation, "an evaluation under output/eval")
    if chosen.target_kind not in OPERATING_KINDS:
        raise UserError(f"the operating point's target is a {' or a '.join(OPERATING_KINDS)}, not "
                        f"{chosen.target_kind!r}")
    try:
        target = float(chosen.target)
    except ValueError:
        raise UserError(f"the operating point needs a target {chosen.target_kind} such as 0.99, not "
                        f"{chosen.target!r}") from None
    return Thresholds.from_evaluation(folder, **{chosen.target_kind: target})


@dataclass
class Item:
    """One image to predict: its file, how the page names it, the studio's URL of it (None: not served)."""

    shown: str
    path: Path
    url: str | None = None


def dataset_items(chosen: Chosen) -> tuple[list[Item], list[str]]:
    """The data set images asked for (a list's first ``count``, and paths typed in), and what was wrong.

    Raises:
        UserError: For an unknown data set or list, or a count or more paths than :data:`MAX_LISTED`.
    """
    lines = [line.strip() for line in chosen.paths.splitlines() if line.strip()]
    if not chosen.split and not lines:
        return [], []
    lists = dataset_lists()
    if chosen.dataset not in lists:
        raise UserError(f"choose a data set of {display_path(data_dir())} for the list or the paths "
                        f"(data sets: {sorted(lists) or 'none'})")
    dataset = load_dataset(data_dir() / chosen.dataset)
    relative: list[str] = []
    if chosen.split:
        count = int(chosen.count) if chosen.count.isascii() and chosen.count.isdigit() else 0
        if not 1 <= count <= MAX_LISTED:
            raise UserError(f"the number of images from a list must be 1..{MAX_LISTED}, not {chosen.count!r}")
        relative += [sample.path for sample in read_split(dataset, plain_name(chosen.split, "a list"))[:count]]
    if len(lines) > MAX_LISTED:
        raise UserError(f"{len(lines)} paths; give at most {MAX_LISTED} at a time")
    items, problems = [], []
    for text in [*relative, *lines]:
        path = resolve_image(dataset.root, text)
        if path is None or not path.is_file():
            problems.append(f"{text}: not a file of the data set {chosen.dataset} (a path relative to its folder)")
        else:
            items.append(Item(text, path, url_for_file(path)))
    return items, problems


def saved_name(client_name: str, index: int, suffix: str) -> str:
    """The name an upload is saved under: its number, the letters, digits, ``_`` and ``-`` of the client's file
    name without folders or suffix (at most :data:`MAX_STEM` of them), and the suffix of its format."""
    base = PurePosixPath(client_name.replace("\\", "/")).name
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:MAX_STEM] or "image"
    return f"{index:02d}-{stem}{suffix}"


def image_format(path: Path) -> str:
    """The format of an image file that decodes, through :mod:`common.images` (decompression bombs refused).

    Raises:
        UserError: Saying why it is not an image the studio takes.
    """
    try:
        with open_image(path) as opened:
            found = opened.format or "?"
        decode_image(path, fit=(CHECK_SIZE, CHECK_SIZE))
    except UnidentifiedImageError:
        raise UserError("not an image (no image format recognises it)") from None
    except UnreadableImageError as exc:
        raise UserError(f"cannot decode it as an image ({exc.reason.replace(str(path), 'the file')})") from None
    except DECODE_ERRORS as exc:
        raise UserError(f"cannot decode it as an image ({str(exc).replace(str(path), 'the file')})") from None
    if found not in UPLOAD_SUFFIXES:
        raise UserError(f"a {found} image; the studio takes {', '.join(sorted(set(UPLOAD_SUFFIXES)))}")
    return found


def store_upload(stream: BinaryIO, client_name: str, folder: Path, index: int) -> Item:
    """Save one upload in ``folder`` when it is an image within the limits; nothing stays behind when not.

    Raises:
        UserError: Naming the upload and why it was refused.
    """
    incoming = folder / f".incoming-{index}"
    try:
        with open(incoming, "xb") as target:
            stream.seek(0)
            while chunk := stream.read(2**20):
                if target.tell() + len(chunk) > MAX_UPLOAD_BYTES:
                    raise UserError(f"larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
                target.write(chunk)
        if incoming.stat().st_size == 0:
            raise UserError("an empty file")
        saved = folder / saved_name(client_name, index, UPLOAD_SUFFIXES[image_format(incoming)])
        os.replace(incoming, saved)
    except UserError as exc:
        raise UserError(f"{client_name}: not taken: {exc}") from None
    finally:
        incoming.unlink(missing_ok=True)
    return Item(client_name, saved, url_for_file(saved))


def store_uploads(uploads: Sequence[UploadFile]) -> tuple[list[Item], list[str], Path | None]:
    """Save the uploads that are images in a new folder under :func:`uploads_root`.

    Returns:
        The saved images, what was wrong with the others (each naming its file), and the folder
        (None when none was saved: then no folder is left).
    """
    if not uploads:
        return [], [], None
    folder = uploads_root() / f"{stamp()}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    items, problems = [], []
    for index, upload in enumerate(uploads, start=1):
        name = (upload.filename or "")[:200]
        if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
            problems.append(f"{name}: not taken: larger than {MAX_UPLOAD_BYTES // 2**20} MiB")
            continue
        try:
            items.append(store_upload(upload.file, name, folder, index))
        except UserError as exc:
            problems.append(str(exc))
    if not items:
        folder.rmdir()
        return items, problems, None
    return items, problems, folder


@dataclass
class Shown:
    """One image's prediction, as the page shows it."""

    item: Item
    decision: str
    decided: bool
    threshold: float | None
    top: list[tuple[str, float]] = field(default_factory=list)


def run_classifier(classifier: Classifier, items: list[Item]) -> tuple[list[Shown], list[str]]:
    """Predict every item with :class:`predict.Classifier`; the items that did not decode are named."""
    predictions: list[Prediction] = classifier.predict([str(item.path) for item in items], on_unreadable="skip")
    by_source = {prediction.source: prediction for prediction in predictions}
    shown, problems = [], []
    for item in items:
        found = by_source.get(str(item.path))
        if found is None:
            problems.append(f"{item.shown}: could not be decoded; left out")
            continue
        shown.append(Shown(item, found.decision, found.decided, found.threshold,
                           [(score.name, score.probability) for score in found.top[:SHOWN_CLASSES]]))
    return shown, problems


def uploads_of(form: Any, limits: dict[str, Any]) -> list[UploadFile]:
    """The form's uploaded files (file inputs left empty are not uploads).

    Raises:
        UserError: For more files than the app's ``form_limits`` allow.
    """
    uploads = [value for value in form.getlist("images") if isinstance(value, UploadFile)
               and (value.filename or value.size)]
    if len(uploads) > limits["max_files"]:
        raise UserError(f"{len(uploads)} files; upload at most {limits['max_files']} at a time")
    return uploads


async def predict(request: Request) -> Response:
    """POST /predict: save the uploads that are images, run the model on them and on the data set images chosen."""
    limits = request.app.state.form_limits
    form = await request.form(**limits)
    chosen = Chosen.from_form(form)
    problems: list[str] = []
    try:
        model = model_dir() / plain_name(chosen.model, f"a model in {display_path(model_dir())}")
        thresholds = await asyncio.to_thread(thresholds_of, chosen)
        classifier = await asyncio.to_thread(Classifier.load, model, thresholds, workers=2)
        items, problems = await asyncio.to_thread(dataset_items, chosen)
        uploaded, refused, folder = await asyncio.to_thread(store_uploads, uploads_of(form, limits))
        items, problems = items + uploaded, problems + refused
        if not items:
            raise UserError("no image to predict: upload images, or choose a list or paths of a data set")
        results, unread = await asyncio.to_thread(run_classifier, classifier, items)
    except UserError as exc:
        context = await asyncio.to_thread(form_context, chosen)
        return page(request, "predict.html", 400, error=str(exc), problems=problems, form_limits=limits, **context)
    context = await asyncio.to_thread(form_context, chosen)
    return page(request, "predict.html", results=results, problems=problems + unread, abstain=ABSTAIN,
                thresholds=thresholds.to_record() if thresholds else None, form_limits=limits,
                folder=display_path(folder) if folder else None, **context)


def routes() -> list[Route]:
    """The routes of this module."""
    return [
        Route("/predict", predict_form, methods=["GET"]),
        Route("/predict", state_changing(predict), methods=["POST"]),
    ]
