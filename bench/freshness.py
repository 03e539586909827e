"""The cost of telling that a packed image changed: file stamps against content hashes, on 20,000 files.

A pack is used only when every listed image is the one that was packed
(:func:`train.data.packs.file_stamp`: size, modification time, change time and inode,
one ``stat`` per image). The alternative, a sha256 of every image's content, would
read the whole data set at every start. Both are measured here, side by side, on the
20,000 JPEGs (256 x 256, about 20 kB each) of ``bench.data``'s photo set (generated
once in ``data/bench_photos/``):

1. stamps: :func:`train.data.packs.file_stamp` of every image;
2. hashes: :func:`common.files.file_sha256` of every image (files in the page cache:
   a cold cache makes hashing slower still, stamps hardly);
3. the whole check a training start makes for the 16,000-image train split
   (:func:`train.data.packs.open_pack_split` of a 64 x 64 pack: list file, stamps, the
   arrays' sha256, the labels against the list).

4. the same two contenders on 500 files of 1 MB (a camera photo's size; random bytes,
   which neither contender looks into), in a temporary folder.

Printed: milliseconds per round (median), microseconds per file and the ratio of
hashing to stamping. A stamp costs one ``stat`` whatever the size, a hash reads every
byte: target: on the 1 MB files, stamps at most a tenth of the hashes' time (on the
small JPEGs the ratio is printed, as the floor of what hashing would cost).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from common.files import file_sha256
from common.lists import read_split
from train.data.packs import file_stamp, open_pack_split, write_pack

TARGET_RATIO = 10.0
"""On 1 MB files, hashing must take at least this many times as long as stamping (else hashes would be the choice)."""

LARGE_FILES, LARGE_BYTES = 500, 1 << 20
"""The second case: files of a camera photo's size."""


def main(rounds: int) -> int:
    """Measure and print; 0 when the stamps are at least :data:`TARGET_RATIO` times cheaper than hashes."""
    from bench.data import contract, photo_set

    dataset = photo_set()
    paths = sorted({dataset.image_path(s) for split in ("train", "val", "test") for s in read_split(dataset, split)})
    small = contract(64)
    if isinstance(open_pack_split(dataset, "train", small, "error"), str):
        print(f"packing {dataset.root.name} at 64x64 (once) ...", flush=True)
        write_pack(dataset, small, ["train", "val", "dev"])
    stamp, digest = _contenders(paths, rounds)
    print(f"{len(paths):,} files of the photo set (about 20 kB each), {rounds} rounds (median):")
    _print(stamp, digest, len(paths))
    opening = [_seconds(lambda: open_pack_split(dataset, "train", small, "error")) for _ in range(max(2, rounds // 2))]
    train = len(read_split(dataset, "train"))
    print(f"  open_pack_split, train ({train:,} images at 64x64, with the arrays' sha256 and the labels check): "
          f"{statistics.median(opening) * 1e3:.0f} ms")
    with tempfile.TemporaryDirectory(dir=dataset.root.parent) as folder:
        large = []
        for index in range(LARGE_FILES):
            large.append(Path(folder) / f"{index:04d}.jpg")
            large[-1].write_bytes(os.urandom(LARGE_BYTES))
        stamp, digest = _contenders(large, rounds)
    print(f"{LARGE_FILES:,} files of {LARGE_BYTES >> 20} MB, {rounds} rounds (median):")
    ratio = _print(stamp, digest, LARGE_FILES)
    print(f"  target: hashing / stamps at least {TARGET_RATIO:g}x on these: {'met' if ratio >= TARGET_RATIO else 'MISSED'}")
    return 0 if ratio >= TARGET_RATIO else 1


def _contenders(paths: Sequence[Path], rounds: int) -> tuple[float, float]:
    """Median seconds of stamping and of hashing every file, alternating, the page cache warm for both."""
    for path in paths:
        file_sha256(path)
    stamps, hashes = [], []
    for _ in range(rounds):  # alternating, so that both see the same machine
        stamps.append(_seconds(lambda: [file_stamp(path) for path in paths]))
        hashes.append(_seconds(lambda: [file_sha256(path) for path in paths]))
    return statistics.median(stamps), statistics.median(hashes)


def _print(stamp: float, digest: float, count: int) -> float:
    """Print both contenders and their ratio; returns the ratio."""
    print(f"  stamps (size, mtime, ctime, inode) {stamp * 1e3:9.1f} ms  {stamp / count * 1e6:7.2f} us/file")
    print(f"  sha256 of every file               {digest * 1e3:9.1f} ms  {digest / count * 1e6:7.2f} us/file")
    print(f"  hashing / stamps: {digest / stamp:.1f}x")
    return digest / stamp


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started
