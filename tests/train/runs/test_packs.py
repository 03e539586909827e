"""Training from packs: used when they match, the same weights as decoding, never stale, shared by nodes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from common.errors import UserError
from common.lists import load_dataset
from common.paths import PROJECT_ROOT
from networks import load_network_config
from networks.checkpoint import read_checkpoint
from train.run import RunOptions, train
from train.data.packs import write_pack

QUIET = RunOptions(progress=False, device="cpu")
DEV = ("data.train_split=dev", "data.val_split=dev", "epochs=2")


@pytest.fixture
def digits(digits_root, tmp_path):
    shutil.copytree(digits_root, tmp_path / "digits")
    return load_dataset(tmp_path / "digits")


def weights(run_dir) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


@pytest.mark.slow
def test_a_matching_pack_is_used_and_trains_exactly_as_decoding(fast_config, digits, tiny_network):
    decoded = train(fast_config(f"data.dataset={digits.root}", *DEV), QUIET)
    write_pack(digits, load_network_config(tiny_network).input, ["dev"])
    packed = train(fast_config(f"data.dataset={digits.root}", *DEV), QUIET)
    streamed = train(fast_config(f"data.dataset={digits.root}", "data.in_memory=false", *DEV), QUIET)
    log = (packed.run_dir / "log.txt").read_text()
    assert "dev 100 images (pack" in log and "in memory)" in log
    assert "read per batch)" in (streamed.run_dir / "log.txt").read_text()
    for other in (packed, streamed):
        a, b = weights(decoded.run_dir), weights(other.run_dir)
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_stale_pack_is_ignored_saying_why_or_refused(fast_config, digits, tiny_network):
    write_pack(digits, load_network_config(tiny_network).input, ["dev"])
    with open(digits.list_path("dev"), "a") as stream:
        stream.write("# edited after packing\n")
    run = train(fast_config(f"data.dataset={digits.root}", *DEV), QUIET)
    log = (run.run_dir / "log.txt").read_text()
    assert "pack not used for dev:" in log and "lists/dev.txt changed since it was packed" in log
    assert "dev 100 images (decoded once, in memory)" in log
    with pytest.raises(UserError, match=r"data\.pack=require: .*lists/dev\.txt changed since it was packed"):
        train(fast_config(f"data.dataset={digits.root}", "data.pack=require", *DEV), QUIET)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_read_one_pack_and_end_with_the_same_weights(digits, tiny_network, tmp_path):
    write_pack(digits, load_network_config(tiny_network).input, ["dev"])
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(tmp_path / "out"), "OMP_NUM_THREADS": "1"}
    port = free_port()
    node = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=imagepipe-test", "-m", "train",
            f"network={tiny_network}", f"data.dataset={digits.root}", "data.pack=require", "epochs=2",
            "batch_size=16", "--dev", "--device", "cpu", "--no-progress"]
    nodes = [subprocess.Popen(node, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for _ in range(2)]
    outputs = [n.communicate(timeout=300)[0] for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    (run_dir,) = (tmp_path / "out" / "train").iterdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["status"] == "finished"
    assert manifest["result"]["ranks_in_sync"] is True  # each rank hashed its weights; all equal
    assert "dev 100 images (pack" in (run_dir / "log.txt").read_text()
