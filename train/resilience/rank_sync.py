"""Processes that drifted apart: at a run's end under torchrun, every process must hold the same weights.

DistributedDataParallel keeps the weights of every process equal. :class:`RankSyncHook`
checks it once the run ended (each process hashes its weights, the hashes are
compared), records ``ranks_in_sync`` in the run's result, and logs an error when
they differ: the checkpoints hold rank 0's. In a single process it records ``true``.
"""

from __future__ import annotations

import logging

from common.run_folder import RunStatus
from train.loop.hooks import Hook, RunState
from train.process.distributed import ranks_agree


class RankSyncHook(Hook):
    """Compares the processes' weights when a run ends by design.

    Args:
        log: The run's logger.
    """

    name = "rank_sync"

    def __init__(self, log: logging.Logger):
        self.log = log

    def after_run(self, run: RunState, status: RunStatus) -> None:
        """Every process hashes its weights (only when all got here together and the run is not left to resume)."""
        if not run.clean or status.resumable:
            return
        in_sync = ranks_agree(run.trainer.network, run.trainer.processes)
        if not in_sync:
            self.log.error("the processes ended with different weights; the checkpoints hold rank 0's")
        run.result["ranks_in_sync"] = in_sync
