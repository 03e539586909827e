"""Processes and devices: a single process, or torchrun's DistributedDataParallel.

Under ``torchrun --nproc_per_node=N -m train``, each process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from the environment; the backend is NCCL on GPUs
and Gloo on the CPU. Only rank 0 writes the run folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.constants import default_pg_timeout

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
        _join_group("nccl" if device.type == "cuda" else "gloo", processes)
    return processes, device


def _join_group(backend: str, processes: Processes) -> None:
    """``init_process_group`` from torchrun's environment.

    torchrun's agent keeps one store for all the attempts of a job; a worker group it
    starts again (``--max-restarts``) would read the addresses the dead workers left
    there and fail or wait to connect to them. So under the agent's store each attempt
    uses keys of its own (``imagepipe/attempt-<TORCHELASTIC_RESTART_COUNT>/``).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or "TORCHELASTIC_RESTART_COUNT" not in os.environ:
        dist.init_process_group(backend=backend)
        return
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), processes.world_size,
                          is_master=False, timeout=default_pg_timeout)
    attempt = os.environ["TORCHELASTIC_RESTART_COUNT"]
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"imagepipe/attempt-{attempt}/", store),
                            rank=processes.rank, world_size=processes.world_size)


def stop_processes() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, processes: Processes) -> torch.Tensor:
    """Sum a tensor over all processes (in place); a no-op in a single process."""
    if processes.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather(tensor: torch.Tensor, processes: Processes) -> list[torch.Tensor]:
    """Every process's ``tensor`` (same shape everywhere), in rank order; ``[tensor]`` in a single process."""
    if not processes.distributed:
        return [tensor]
    gathered = [torch.empty_like(tensor) for _ in range(processes.world_size)]
    dist.all_gather(gathered, tensor)
    return gathered


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


class StepAgreement:
    """Combines small integer flags of every process (their maximum) once per optimiser step, so that all
    processes act on them at the same step.

    Under torchrun each exchange is an asynchronous all-reduce on a Gloo group of its
    own (CPU tensors: no GPU synchronisation, whatever the training backend), whose
    result is read at the next exchange: the decision lags one step and the
    communication overlaps that step. In a single process the flags are the answer.

    Args:
        processes: This process's rank and the world size (every process must create it).
    """

    def __init__(self, processes: Processes):
        self.group = dist.new_group(backend="gloo") if processes.distributed else None
        self.pending: tuple[Any, torch.Tensor] | None = None

    def exchange(self, flags: list[int]) -> list[int]:
        """Send this step's flags; returns the combined flags of the previous exchange (zeros at the first)."""
        if self.group is None:
            return list(flags)
        tensor = torch.tensor(flags, dtype=torch.int64)
        work = dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group, async_op=True)
        previous, self.pending = self.pending, (work, tensor)
        if previous is None:
            return [0] * len(flags)
        previous[0].wait()
        return previous[1].tolist()

    def settle(self, flags: list[int]) -> list[int]:
        """Combine the flags now (blocking), dropping an exchange still pending; for the end of an epoch."""
        if self.group is None:
            return list(flags)
        if self.pending is not None:
            self.pending[0].wait()
            self.pending = None
        tensor = torch.tensor(flags, dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=self.group)
        return tensor.tolist()


def barrier(processes: Processes) -> None:
    """Wait for all processes."""
    if processes.distributed:
        dist.barrier()


def _index(option: str) -> int:
    try:
        return int(option.split(":", 1)[1])
    except ValueError:
        raise UserError(f"--device {option!r}: expected cuda:N with N a GPU index") from None


_PEER_LOST = ("connection reset by peer", "connection closed by peer", "broken pipe", "socket timeout",
              "nccl communicator was aborted", "ncclremoteerror")
"""Words of Gloo's and NCCL's errors when another process of the group is gone."""


def lost_peer_message(exc: BaseException, environ: Mapping[str, str] = os.environ) -> str | None:
    """What to tell the user when ``exc`` is a collective failing because another process died; else None.

    Under a launcher (``WORLD_SIZE`` above 1) the surviving processes see the backend's
    error with a long C++ traceback; the run is already recorded as crashed, with its
    newest checkpoint kept.
    """
    if int(environ.get("WORLD_SIZE", "1") or 1) <= 1 or not isinstance(exc, RuntimeError):
        return None
    text = str(exc)
    if not any(words in text.lower() for words in _PEER_LOST):
        return None
    reason = re.sub(r"^\[[^\]]*\]\s*", "", text.strip().splitlines()[0]).split(". ")[0]
    return (f"another process of this run stopped, so this one cannot go on ({reason}); the run is recorded as "
            "crashed and keeps its newest checkpoint. torchrun --max-restarts starts the group again, and "
            "--auto-resume continues the run from that checkpoint (docs/clusters.md); without them: "
            "pipenv run train --resume <run folder>")

