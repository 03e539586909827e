"""Processes and devices: a single process, or torchrun's DistributedDataParallel.

Under ``torchrun --nproc_per_node=N -m train``, each process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment; the backend is NCCL on GPUs
and Gloo on the CPU. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from common.errors import UserError


@dataclass(frozen=True)
class Processes:
    """Where this process stands.

    Attributes:
        rank: Global rank (0 in a single process).
        world_size: Number of processes.
        local_rank: Rank on this machine (selects the GPU).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1


def resolve_device(option: str, local_rank: int = 0) -> torch.device:
    """``auto`` (GPU if there is one), ``cpu``, ``cuda`` (this process's GPU) or ``cuda:N``.

    Raises:
        UserError: For an unknown option, or a GPU that is not there.
    """
    if option == "auto":
        option = "cuda" if torch.cuda.is_available() else "cpu"
    if option == "cpu":
        return torch.device("cpu")
    if option == "cuda" or option.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {option}: no CUDA GPU is available here; use --device cpu")
        index = local_rank if option == "cuda" else _index(option)
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {option}: only {torch.cuda.device_count()} GPU(s) visible")
        return torch.device("cuda", index)
    raise UserError(f"--device {option!r}: use auto, cpu, cuda or cuda:N")


def start_processes(device_option: str) -> tuple[Processes, torch.device]:
    """Join the torchrun process group when launched by torchrun; choose the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), resolve_device(device_option)
    processes = Processes(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(device_option, processes.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return processes, device


def stop_processes() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Sum a tensor over all processes (in place); a no-op in a single process."""
    if processes.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def average_buffers(network: torch.nn.Module, processes: Processes) -> None:
    """Average floating-point buffers (batch-norm running statistics) over the processes.

    DistributedDataParallel keeps the weights equal but lets each process update its
    batch-norm statistics from its own batches after the last broadcast; averaging
    them before validating and saving makes every process hold the same network.
    """
    if not processes.distributed:
        return
    for buffer in network.buffers():
        if buffer.is_floating_point():
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            buffer.div_(processes.world_size)


def ranks_agree(network: torch.nn.Module, processes: Processes) -> bool:
    """Whether every process holds bitwise the same weights (DistributedDataParallel keeps them so).

    Each process hashes its weights; the hashes are gathered and compared. True in a
    single process.
    """
    if not processes.distributed:
        return True
    digest = hashlib.sha256()
    for tensor in network.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    hashes: list[Any] = [None] * processes.world_size
    dist.all_gather_object(hashes, digest.hexdigest())
    return len(set(hashes)) == 1


def broadcast(value: Any, processes: Processes) -> Any:
    """Rank 0's ``value``, on every process."""
    if not processes.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(processes: Processes) -> None:
    """Wait for all processes."""
    if processes.distributed:
        dist.barrier()


def _index(option: str) -> int:
    try:
        return int(option.split(":", 1)[1])
    except ValueError:
        raise UserError(f"--device {option!r}: expected cuda:N with N a GPU index") from None
