"""The cost of telling that a packed image changed: file stamps against content hashes, on 20,000 files.

A pack is used only when every listed image is the one that was packed
(:func:`train.packs.file_stamp`: size, modification time, change time and inode,
one ``stat`` per image). The alternative, a sha256 of every image's content, would
read the whole data set at every start. Both are measured here, side by side, on the
20,000 JPEGs (256 x 256, about 15 kB each) of ``bench.data``'s photo set (generated
once in ``data/bench_photos/``):

1. stamps: :func:`train.packs.file_stamp` of every image;
2. hashes: :func:`common.files.file_sha256` of every image (files in the page cache:
   a cold cache makes hashing slower still, stamps hardly);
3. the whole check a training start makes for the 16,000-image train split
   (:func:`train.packs.open_pack_split` of a 64 x 64 pack: list file, stamps, the
   arrays' sha256, the labels against the list).

Printed: milliseconds per round (median), microseconds per file and the ratio of
hashing to stamping; target: stamps at most a tenth of the hashes' time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from common.files import file_sha256
from common.lists import read_split
from train.packs import file_stamp, open_pack_split, write_pack

TARGET_RATIO = 10.0
"""Hashing every image must take at least this many times as long as stamping it (else hashes would be the choice)."""


def main(rounds: int) -> int:
    """Measure and print; 0 when the stamps are at least :data:`TARGET_RATIO` times cheaper than hashes."""
    from bench.data import contract, photo_set

    dataset = photo_set()
    paths = sorted({dataset.image_path(s) for split in ("train", "val", "test") for s in read_split(dataset, split)})
    small = contract(64)
    if isinstance(open_pack_split(dataset, "train", small, "error"), str):
        print(f"packing {dataset.root.name} at 64x64 (once) ...", flush=True)
        write_pack(dataset, small, ["train", "val", "dev"])
    for path in paths:  # warm the page cache for both contenders alike
        file_sha256(path)
    stamps, hashes = [], []
    for _ in range(rounds):  # alternating, so that both see the same machine
        stamps.append(_seconds(lambda: [file_stamp(path) for path in paths]))
        hashes.append(_seconds(lambda: [file_sha256(path) for path in paths]))
    opening = [_seconds(lambda: open_pack_split(dataset, "train", small, "error")) for _ in range(max(2, rounds // 2))]
    stamp, digest = statistics.median(stamps), statistics.median(hashes)
    ratio = digest / stamp
    print(f"{len(paths):,} files, {rounds} rounds (median):")
    print(f"  stamps (size, mtime, ctime, inode) {stamp * 1e3:9.1f} ms  {stamp / len(paths) * 1e6:7.2f} us/file")
    print(f"  sha256 of every file               {digest * 1e3:9.1f} ms  {digest / len(paths) * 1e6:7.2f} us/file")
    print(f"  hashing / stamps: {ratio:.1f}x (target at least {TARGET_RATIO:g}x)")
    train = len(read_split(dataset, "train"))
    print(f"  open_pack_split, train ({train:,} images at 64x64, with the arrays' sha256 and the labels check): "
          f"{statistics.median(opening) * 1e3:.0f} ms")
    return 0 if ratio >= TARGET_RATIO else 1


def _seconds(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started
