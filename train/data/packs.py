"""Packed data sets: every split decoded once, at a network's input size, as memory-mappable arrays.

A pack lives beside the images and lists it was made from::

    data/<ds>/packs/<color mode>-<height>x<width>-<interpolation>/
        index.json                what was packed: contract, decoder, list-file sha256s, sample paths with each
                                  image's stamp (size, modification time, change time, inode), array sizes
                                  and sha256s
        <split>.images.npy        uint8 (N, C, H, W): common.images.load_image of each listed image
        <split>.labels.npy        int64 (N,)

The arrays are numpy's ``.npy`` format, nothing home-made, written with ordinary
sequential writes (a full disk is an error naming the file, never a SIGBUS of a
memory-mapped write), after checking that the disk has room for them. A pack is
written whole or not at all (:func:`common.staging.staged`), and
:func:`open_pack_split` is the only reader: it uses a split only when the list
file, every listed image (by its stamp: :func:`file_stamp`), the contract, the
decoder and Pillow are what the pack was made with, both arrays have their
recorded size and sha256, and the pack's paths and labels are the list file's;
otherwise it says why, and the caller decodes the images instead (or refuses, as
configured). Mean and std are not part of the key: they are applied inside the
network, so networks that share a colour mode, size and interpolation share a pack.

Freshness: an image replaced by another of the same size whose modification time
was set back (``cp`` then ``touch -r``) keeps size and mtime, but not its change
time (``st_ctime``, which only the kernel sets, to now, on any change of content or
metadata) and, when a new file took its name, not its inode. Comparing those four
numbers costs one ``stat`` per image; hashing every image's content instead would
read the whole data set at every start (``pipenv run bench freshness`` measures
both on 20,000 files; docs/data.md quotes the figures). A false alarm (a ``chmod``,
a backup tool restoring the files, a copy of the data set to another disk) only
means the pack is rebuilt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from common.contract import InputContract
from common.digits import open_dataset_or_digits
from common.errors import UserError
from common.files import file_sha256, read_json, write_json
from common.images import DECODER_VERSION, check_on_unreadable, decode_samples
from common.limits import DECODE_THREADS_PER_CORE, thread_count
from common.list_versions import is_derived
from common.lists import Dataset, Sample, read_split
from common.paths import display_path
from common.provenance import now
from common.staging import staged

PACK_FORMAT = 3
"""The pack layout this code writes and reads (3: images stamped with change time and inode too)."""


def pack_key(contract: InputContract) -> str:
    """The pack folder name of a contract: ``<color mode>-<height>x<width>-<interpolation>``."""
    return f"{contract.color_mode}-{contract.height}x{contract.width}-{contract.interpolation}"


def pack_folder(dataset: Dataset, contract: InputContract) -> Path:
    """``<data set>/packs/<key>``."""
    return dataset.root / "packs" / pack_key(contract)


def decoding(contract: InputContract) -> dict[str, Any]:
    """What decides the pixels of a pack: the contract's decoding part, the decoder and Pillow."""
    return {"color_mode": contract.color_mode, "height": contract.height, "width": contract.width,
            "interpolation": contract.interpolation, "decoder": DECODER_VERSION, "pillow": metadata.version("pillow")}


@dataclass
class PackSplit:
    """One packed split, ready to read.

    Attributes:
        name: The split.
        images_path: Its ``<split>.images.npy``.
        shape: ``(N, C, H, W)``.
        offset: Byte offset of the pixel data in the file.
        labels: ``int64`` labels ``(N,)``.
        paths: Image path per row (relative to the data set).
        unreadable: ``<list>:<line>`` of images left out when packing.
    """

    name: str
    images_path: Path
    shape: tuple[int, ...]
    offset: int
    labels: np.ndarray
    paths: list[str]
    unreadable: list[str] = field(default_factory=list)
    _file: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.shape[0]

    def close(self) -> None:
        """Close the file :meth:`read` keeps open (it reopens when read again)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def load(self) -> np.ndarray:
        """The whole split in memory, ``uint8 (N, C, H, W)`` (one sequential read)."""
        return np.load(self.images_path)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Some rows, read from the file (``pread``) without mapping it.

        Resident memory stays bounded by the batch however large the pack (mapping the
        file instead lets the kernel map whole large pages around every row read), and
        rows the system keeps cached are copied at memory speed.

        Args:
            rows: Row indices ``(B,)``.

        Returns:
            ``uint8 (B, C, H, W)``.

        Raises:
            UserError: When the file ends early.
        """
        if self._file is None:
            self._file = open(self.images_path, "rb", buffering=0)  # noqa: SIM115 - kept open for the run
        item = int(np.prod(self.shape[1:]))
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        flat = out.reshape(len(rows), item)  # (B, C, H, W) -> (B, C*H*W), a view
        for j, row in enumerate(np.asarray(rows, dtype=np.int64)):
            if os.preadv(self._file.fileno(), [flat[j]], self.offset + int(row) * item) != item:
                raise UserError(f"{display_path(self.images_path)}: truncated; rebuild it with `pipenv run pack`")
        return out


def open_pack_split(dataset: Dataset, split: str, contract: InputContract, on_unreadable: str
                    ) -> PackSplit | str:
    """The packed split that matches the data set and contract exactly, or why there is none.

    Returns:
        The split, or a sentence saying why the pack cannot be used (no pack, a
        changed list file, another decoder, a damaged array, ...).
    """
    folder = pack_folder(dataset, contract)
    index_path = folder / "index.json"
    if not index_path.is_file():
        return f"no pack in {display_path(folder)}"
    try:
        index = read_json(index_path)
        entry = index["splits"][split] if index.get("format_version") == PACK_FORMAT else None
    except (UserError, AttributeError, KeyError, TypeError):
        return f"{display_path(index_path)} is unreadable or has no split {split!r}"
    if entry is None:
        return f"{display_path(index_path)}: pack format {index.get('format_version')!r}, this code reads {PACK_FORMAT}"
    try:
        changed = _stale(index, entry, dataset, split, contract)
        if changed:
            return f"{display_path(folder)}: {changed}"
        if entry["unreadable"] and on_unreadable == "error":
            return (f"{display_path(folder)}: {len(entry['unreadable'])} unreadable image(s) were left out when "
                    f"packing (e.g. {entry['unreadable'][0]}), and on_unreadable is error")
        return _checked_arrays(folder, dataset, split, entry, contract)
    except (KeyError, TypeError, AttributeError, IndexError, ValueError):
        return f"{display_path(index_path)}: damaged (a field of split {split!r} is missing or malformed); rebuild it"


def _stale(index: dict[str, Any], entry: dict[str, Any], dataset: Dataset, split: str,
           contract: InputContract) -> str | None:
    if index.get("decoding") != decoding(contract):
        return (f"made for {index.get('decoding')}, but decoding now is {decoding(contract)}; rebuild it with "
                "`pipenv run pack`")
    list_path = dataset.list_path(split)
    if not list_path.is_file() or file_sha256(list_path) != entry.get("list_sha256"):
        return f"{display_path(list_path)} changed since it was packed; rebuild it with `pipenv run pack`"
    for path, recorded in zip(entry["paths"], entry["files"], strict=True):
        if list(file_stamp(dataset.root / path)) != list(recorded):
            return (f"{display_path(dataset.root / path)} changed since it was packed (its size, modification or "
                    "change time, or inode); rebuild it with `pipenv run pack`")
    return None


def file_stamp(path: Path) -> tuple[int, int, int, int]:
    """``(size, modification time ns, change time ns, inode)`` of an image (links followed), or ``(-1, -1, -1, -1)``
    when it is gone: what tells :func:`open_pack_split` that an image changed since it was packed."""
    try:
        status = path.stat()
    except OSError:
        return -1, -1, -1, -1
    return status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino


def _labels_differ(dataset: Dataset, split: str, paths: list[str], labels: np.ndarray) -> str | None:
    """Where the pack's paths and labels disagree with the list file's, or None."""
    try:
        listed = {sample.path: sample.label for sample in read_split(dataset, split)}
    except UserError as exc:
        return f"its list file cannot be read ({str(exc).splitlines()[0]})"
    if len(labels) != len(paths):
        return f"{len(labels)} labels for {len(paths)} images"
    for path, label in zip(paths, labels.tolist()):
        if listed.get(path) != label:
            return (f"{path} has label {label} in the pack but {listed.get(path, 'no line')} in "
                    f"{display_path(dataset.list_path(split))}")
    return None


def _checked_arrays(folder: Path, dataset: Dataset, split: str, entry: dict[str, Any], contract: InputContract
                    ) -> PackSplit | str:
    images_path, labels_path = folder / f"{split}.images.npy", folder / f"{split}.labels.npy"
    expected = (entry["samples"], *contract.shape)
    for path in (images_path, labels_path):
        if not path.is_file() or path.stat().st_size != entry["bytes"][path.name]:
            return f"{display_path(path)} is missing or truncated; rebuild it with `pipenv run pack`"
        if file_sha256(path) != entry["sha256"][path.name]:
            return f"{display_path(path)} does not match its recorded sha256 (damaged); rebuild it with `pipenv run pack`"
    with open(images_path, "rb") as stream:
        version = np.lib.format.read_magic(stream)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(stream)
        offset = stream.tell()
    if tuple(shape) != expected or dtype != np.uint8:
        return f"{display_path(images_path)} holds {dtype} {tuple(shape)}, expected uint8 {expected}"
    labels = np.load(labels_path, allow_pickle=False)
    differ = _labels_differ(dataset, split, list(entry["paths"]), labels)
    if differ:
        return f"{display_path(labels_path)} disagrees with the list file: {differ}; rebuild it with `pipenv run pack`"
    return PackSplit(split, images_path, tuple(shape), offset, labels, list(entry["paths"]), list(entry["unreadable"]))


def write_pack(dataset: Dataset, contract: InputContract, splits: Sequence[str], on_unreadable: str = "error",
               workers: int = 0, progress: Callable[[int], None] | None = None) -> Path:
    """Decode every listed image of ``splits`` once and publish the pack (replacing an older one).

    Args:
        dataset: The data set.
        contract: The input contract to decode at.
        splits: The splits to pack (each must have a list file).
        on_unreadable: ``error`` stops at an unreadable image; ``skip`` leaves it out (recorded).
        workers: Decoding threads (0: one per CPU core).
        progress: Called with the number of images decoded since the last call.

    Returns:
        The pack folder.

    Raises:
        UserError: For a list-file problem, or an unreadable image under ``error``.
    """
    check_on_unreadable(on_unreadable, "--on-unreadable")
    listed = {split: read_split(dataset, split) for split in splits}  # every list is checked before decoding
    target = pack_folder(dataset, contract)
    entries = {}
    with staged(target, exists="replace") as stage:
        _check_space(target, listed, contract)
        for split, samples in listed.items():
            entries[split] = _write_split(stage.path, dataset, split, samples, contract, on_unreadable,
                                          workers, progress)
        write_json(stage.path / "index.json", {
            "format_version": PACK_FORMAT, "tool": "pipenv run pack", "created": now(),
            "dataset": display_path(dataset.root), "key": pack_key(contract), "decoding": decoding(contract),
            "splits": entries})
    return target


def _write_split(folder: Path, dataset: Dataset, split: str, samples: list[Sample], contract: InputContract,
                 on_unreadable: str, workers: int, progress: Callable[[int], None] | None) -> dict[str, Any]:
    images_path = folder / f"{split}.images.npy"
    kept = _write_images(images_path, dataset, samples, contract, on_unreadable, workers, progress)
    if not kept:
        raise UserError(f"{display_path(dataset.list_path(split))}: none of the {len(samples)} images could be decoded")
    labels_path = folder / f"{split}.labels.npy"
    np.save(labels_path, np.array([s.label for s in kept], dtype=np.int64))
    list_path = dataset.list_path(split)
    kept_lines = {s.line for s in kept}
    return {"list": display_path(list_path), "list_sha256": file_sha256(list_path), "samples": len(kept),
            "paths": [s.path for s in kept], "files": [file_stamp(dataset.root / s.path) for s in kept],
            "unreadable": [f"{s.source}:{s.line}" for s in samples if s.line not in kept_lines],
            "on_unreadable": on_unreadable,
            "bytes": {p.name: p.stat().st_size for p in (images_path, labels_path)},
            "sha256": {p.name: file_sha256(p) for p in (images_path, labels_path)}}


def _write_images(path: Path, dataset: Dataset, samples: list[Sample], contract: InputContract, on_unreadable: str,
                  workers: int, progress: Callable[[int], None] | None) -> list[Sample]:
    """Decode ``samples`` into ``path`` (``.npy``, uint8 ``(N, C, H, W)``) with ordinary writes; the samples kept.

    The header names every listed image; when some are skipped as unreadable, it is
    rewritten with the number kept (same length: padded as numpy pads it) and the file
    cut after the last image written.
    """
    header = _npy_header(len(samples), contract)
    kept: list[Sample] = []
    try:
        with open(path, "wb") as stream:
            stream.write(header)
            for batch, images in decode_samples(dataset, samples, contract, 256, workers, on_unreadable):
                stream.write(np.ascontiguousarray(images, dtype=np.uint8).tobytes())  # (B, C, H, W), C order
                kept += batch
                if progress is not None:
                    progress(len(batch))
            if len(kept) < len(samples):
                short = _npy_header(len(kept), contract, len(header))
                stream.seek(0)
                stream.write(short)
                stream.truncate(len(short) + len(kept) * int(np.prod(contract.shape)))
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)  # a full disk names the file, as every other write does
        raise
    return kept


def _npy_header(count: int, contract: InputContract, length: int | None = None) -> bytes:
    """The ``.npy`` (version 1.0) header of a uint8 ``(count, C, H, W)`` array, padded to ``length`` bytes if given."""
    fields = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (count, *contract.shape)}
    text = repr(fields)
    base = len(np.lib.format.MAGIC_PREFIX) + 2 + 2 + len(text) + 1  # magic, version, length, text, newline
    total = length or -(-(base + 32) // 64) * 64  # room for a longer count later, aligned as numpy aligns
    padded = text + " " * (total - base) + "\n"
    header = np.lib.format.magic(1, 0) + len(padded).to_bytes(2, "little") + padded.encode("latin1")
    if len(header) != total:
        raise ValueError(f"npy header of {len(header)} bytes, expected {total}")
    return header


def _check_space(target: Path, listed: dict[str, list[Sample]], contract: InputContract) -> None:
    """Refuse to pack when the disk that will hold ``target`` has no room for the arrays (before decoding anything).

    Raises:
        UserError: Naming the pack folder, the bytes needed and free.
    """
    needed = sum(len(samples) * (int(np.prod(contract.shape)) + 8) + 256 for samples in listed.values())
    free = shutil.disk_usage(target.parent).free
    if needed > free:
        raise UserError(f"{display_path(target)}: the pack needs about {needed / 2**20:,.1f} MB but the disk has "
                        f"{free / 2**20:,.1f} MB free; free some space or pack fewer splits (--splits)")


def pack_dataset(dataset: str, network: str, splits: Sequence[str] = (), on_unreadable: str = "error",
                 workers: int = 0, progress: bool = True) -> Path:
    """Pack a data set's splits for a network's input contract.

    Args:
        dataset: A data set under the data folder, or its path.
        network: A shared network config name or path (its input contract decides the pack).
        splits: Splits to pack (default: every list file of the data set).
        on_unreadable: ``error`` or ``skip``.
        workers: Decoding threads (0: one per CPU core).
        progress: Show a progress bar.

    Returns:
        The pack folder.

    Raises:
        UserError: For a missing data set, network config or split, or unreadable images under ``error``.
    """
    from tqdm import tqdm

    from networks.config import load_network_config

    data = open_dataset_or_digits(dataset)
    contract = load_network_config(network).input
    available = sorted(p.stem for p in (data.root / "lists").glob("*.txt"))
    chosen = list(splits) or [split for split in available if not is_derived(split)]  # not cross-validation folds
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise UserError(f"--splits: no list file for {missing} in {display_path(data.root / 'lists')}; "
                        f"available: {available}")
    with tqdm(unit="img", desc="pack", disable=None if progress else True) as bar:
        return write_pack(data, contract, chosen, on_unreadable,
                          thread_count(workers, "--workers", DECODE_THREADS_PER_CORE), progress=bar.update)
