"""Training on several processes (devices, nodes) with Lightning DDP.

One process per device runs :func:`~pointseg.training.run_training`; the processes are started
by a launcher (``torchrun``, ``srun`` under SLURM; ``pointseg train --devices N`` on one machine
starts ``torchrun`` itself). What each rank does:

- **Rank 0 first**: rank 0 prepares the pseudo-labels (filling the shared cache) and opens the
  run folder while the others wait; they then read the cache and get the folder's path (or rank
  0's error, raised on every rank: no rank is left waiting on one that failed).
- **Windows**: each epoch's seeded draw of window keys is dealt out ``rank::world_size``, so
  ranks never draw the same window and their union is the single-process draw.
- **Metrics**: validation and test images are dealt out the same way; one confusion matrix is
  summed over ranks (never per-rank mIoU averaged), so the metrics equal a single-process run's.
- **Writes**: only rank 0 writes checkpoints, history, ``model.pt`` and metrics, through the
  same run-folder transaction as a single-process run (:mod:`pointseg.training.rundir`).

The process group is opened here (before Lightning, which then uses it): ``gloo`` on CPU,
``nccl`` on CUDA, plus a ``gloo`` group for the small control messages.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from pointseg.constants import IGNORE_INDEX

__all__ = [
    "STRATEGIES",
    "DistContext",
    "RankShard",
    "launched_externally",
    "run_in_processes",
    "setup_distributed",
    "shard_indices",
    "torchrun_command",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``--strategy`` values: ``auto`` is ``ddp`` on more than one process.
STRATEGIES = ("auto", "ddp", "ddp_find_unused_parameters_true")

#: How long a rank waits for the others at a control message (rank 0 may label for hours).
CONTROL_TIMEOUT = datetime.timedelta(hours=12)


def launched_externally() -> bool:
    """Whether this process was started by a launcher (torchrun or SLURM's srun)."""
    return _cluster_environment() is not None


def _cluster_environment() -> Any:
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment()
    return None


def torchrun_command(argv: Sequence[str], *, nproc: int) -> list[str]:
    """The command that runs ``pointseg ARGV`` in ``nproc`` processes on this machine."""
    import sys

    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={int(nproc)}",
        "-m",
        "pointseg",
        *argv,
    ]


def run_in_processes(cfg: Any) -> None:
    """Train ``cfg`` in ``cfg.devices`` torchrun processes on this machine, and wait for them.

    The processes run ``pointseg train --config`` with ``cfg`` saved beside its run folder
    (removed afterwards); they print and write as any distributed run does.

    Raises
    ------
    ValueError
        With ``cfg.num_nodes`` > 1: several nodes need a launcher on each node.
    RuntimeError
        If the processes fail (their own messages are printed above it).
    """
    import subprocess
    import tempfile
    from pathlib import Path

    if int(cfg.num_nodes) > 1:
        raise ValueError(
            f"--num-nodes {cfg.num_nodes} needs a launcher on every node: run 'torchrun "
            "--nnodes N --nproc-per-node D --rdzv-endpoint HOST:PORT -m pointseg train ...' on "
            "each node, or srun under SLURM (README: Scaling out)"
        )
    from pointseg.io.atomic import pid_alive

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.launch-*.yaml"):  # left by a killed launch
        pid = old.name.split(".launch-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            old.unlink(missing_ok=True)
    prefix = f".{out.name}.launch-{os.getpid()}-"
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=".yaml", dir=out.parent)
    os.close(fd)
    try:
        cfg.save(name)
        argv = ["train", "--config", name] if cfg.progress else ["-q", "train", "--config", name]
        command = torchrun_command(argv, nproc=int(cfg.devices))
        logger.info("starting %d training processes: %s", cfg.devices, " ".join(command))
        code = subprocess.call(command)
    finally:
        os.unlink(name)
    if code != 0:
        raise RuntimeError(
            f"the {cfg.devices} training processes failed (exit status {code}); their "
            "messages are above"
        )


def shard_indices(n: int, *, rank: int, world_size: int, pad: bool = False) -> list[int]:
    """Indices ``rank, rank + world_size, ...`` below ``n``: disjoint over ranks, union all.

    With ``pad`` every rank gets ``ceil(n / world_size)`` indices; those past ``n`` are
    returned as ``n + k`` (the caller marks them as padding).
    """
    per = math.ceil(n / world_size) if n else 0
    out = [rank + k * world_size for k in range(per)]
    return out if pad else [i for i in out if i < n]


@dataclass
class DistContext:
    """Where this process stands among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    group: Any = None  # gloo group for control messages

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier(group=self.group)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (picklable objects)."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of ``array`` over ranks (int64/float64 arrays)."""
        if not self.distributed:
            return array
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        torch.distributed.all_reduce(tensor, group=self.group)
        return tensor.numpy()

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0, then on the other ranks (which may then read what it cached).

        An exception on rank 0 is raised on every rank, with rank 0's message.
        """
        first: list[T] = []
        self.from_main(lambda: first.append(fn()))  # only rank 0's error crosses, not its value
        return first[0] if self.is_main else fn()

    def from_main(self, fn: Callable[[], T]) -> T:
        """``fn()`` run on rank 0 only, its result (or its error) shared with every rank."""
        if not self.distributed:
            return fn()
        if self.is_main:
            try:
                value = fn()
            except BaseException as exc:
                self.broadcast(("error", f"{type(exc).__name__}: {exc}"))
                raise
            return self.broadcast(("ok", value))[1]
        status, value = self.broadcast(None)
        if status == "error":
            raise RuntimeError(f"rank 0 failed, so rank {self.rank} stops: {value}")
        return value

    def shard(self, n: int) -> list[int]:
        """This rank's share of ``n`` items (see :func:`shard_indices`)."""
        return shard_indices(n, rank=self.rank, world_size=self.world_size)


def setup_distributed(
    *, devices: int, num_nodes: int, accelerator: str, strategy: str = "auto"
) -> DistContext:
    """Join the training processes (a no-op for one process).

    Parameters
    ----------
    devices, num_nodes : int
        Processes per node and nodes; their product must be the launcher's world size.
    accelerator : str
        ``cpu``/``auto`` without CUDA use ``gloo``; CUDA uses ``nccl``.
    strategy : str
        One of :data:`STRATEGIES`.

    Raises
    ------
    ValueError
        If several processes are asked for but this one was not started by a launcher, or the
        launcher started another number of processes.
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown strategy {strategy!r}; available strategies: {', '.join(STRATEGIES)}"
        )
    world = int(devices) * int(num_nodes)
    if world == 1:
        return DistContext()
    env = _cluster_environment()
    if env is None:
        raise ValueError(
            f"--devices {devices} --num-nodes {num_nodes} asks for {world} processes, but this "
            "one was not started by a launcher: run 'pointseg train --devices N' on one machine "
            "(it starts torchrun itself), 'torchrun --nproc-per-node N -m pointseg train ...', "
            "or srun under SLURM (README: Scaling out)"
        )
    if env.world_size() != world:
        raise ValueError(
            f"the launcher started {env.world_size()} processes but --devices {devices} x "
            f"--num-nodes {num_nodes} = {world}; make them agree (e.g. torchrun "
            f"--nproc-per-node {devices} --nnodes {num_nodes})"
        )
    rank, local = env.global_rank(), env.local_rank()
    cuda = accelerator in ("cuda", "gpu") or (accelerator == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda else "gloo"
    if not torch.distributed.is_initialized():  # kept for later runs of this process
        os.environ.setdefault("MASTER_ADDR", env.main_address)
        os.environ.setdefault("MASTER_PORT", str(env.main_port))
        if cuda:
            torch.cuda.set_device(local)
        torch.distributed.init_process_group(
            backend, rank=rank, world_size=world, timeout=CONTROL_TIMEOUT
        )
        atexit.register(_leave)
    group = torch.distributed.new_group(backend="gloo", timeout=CONTROL_TIMEOUT)
    logger.info("rank %d of %d (local rank %d, %s)", rank, world, local, backend)
    return DistContext(rank=rank, world_size=world, local_rank=local, group=group)


def _leave() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


class RankShard(Dataset):
    """This rank's share of ``dataset`` for evaluation, padded to the same length on every rank.

    Every rank runs the same number of validation steps (Lightning's collectives need it);
    the padding items repeat an item with every mask pixel set to the ignore value, so they
    add nothing to the confusion matrix that is summed over ranks.
    """

    def __init__(self, dataset: Any, *, rank: int, world_size: int) -> None:
        self.dataset = dataset
        self.n = len(dataset)
        self.indices = shard_indices(self.n, rank=rank, world_size=world_size, pad=True)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        index = self.indices[i]
        if index < self.n:
            return self.dataset[index]
        sample = dict(self.dataset[index % self.n])
        mask = sample["mask"]
        if isinstance(mask, torch.Tensor):
            sample["mask"] = torch.full_like(mask, IGNORE_INDEX)
        else:
            sample["mask"] = np.full_like(np.asarray(mask), IGNORE_INDEX)
        return sample
