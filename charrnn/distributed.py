"""Data-parallel training under torchrun: joining the process group the launcher's environment
describes (gloo on CPUs, NCCL on CUDA GPUs, one GPU per local rank), and the few collectives the
training loop and the tasks need. PyTorch does the work (torch.distributed, DistributedDataParallel,
torchrun's rendezvous and restarts); this module only says which rank does what."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from .errors import CharrnnError, UsageError

T = TypeVar("T")


def launched_in_parallel() -> bool:
    """Whether a launcher (torchrun, or any that sets the env:// variables) started this process as
    one of several. A world of one is trained as a plain process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def writes_output() -> bool:
    """Whether this process prints results: the only process, or rank 0 of several (read from the
    launcher's environment, so it holds after the process group is gone)."""
    return int(os.environ.get("RANK", "0")) == 0


def launch_command(command: str) -> str:
    """A command as this process was launched to run it: `charrnn train` itself, or under torchrun
    on one machine `torchrun --standalone --nproc-per-node N -m charrnn train` (on several, with
    the launch's own rendezvous options, which a worker cannot see)."""
    if not launched_in_parallel():
        return command
    world, local = os.environ.get("WORLD_SIZE", "1"), os.environ.get("LOCAL_WORLD_SIZE", "1")
    options = f"--standalone --nproc-per-node {local}" if world == local else "OPTIONS"
    return f"torchrun {options} -m {command}"


def restart_count() -> int:
    """How many times torchrun has restarted the workers of this launch (0: the first start)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def launch_id() -> str | None:
    """What names this torchrun launch (its --rdzv-id; a fresh one for each --standalone launch),
    kept in checkpoints so that a restarted worker resumes its own launch's run and no other."""
    return os.environ.get("TORCHELASTIC_RUN_ID") if launched_in_parallel() else None


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[torch.device]:
    """Join the launcher's process group for as long as the block runs, when launched in parallel;
    yields the device this process trains on (its local rank's GPU on CUDA). A plain process gets
    its device back and joins nothing."""
    if not launched_in_parallel():
        yield device
        return
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; train without torchrun")
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise UsageError(f"torchrun started more processes on this machine than it has GPUs ({count}); "
                             f"give --nproc-per-node {count} or fewer")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        _init_process_group("nccl", device)
    elif device.type == "cpu":
        _init_process_group("gloo", None)
    else:
        raise UsageError(f"--device {device.type} cannot train under torchrun; use cpu or cuda")
    try:
        yield device
    except (RuntimeError, dist.DistError) as exc:
        if not _lost_contact(exc):
            raise
        raise CharrnnError(f"rank {dist.get_rank()} lost contact with the other training processes (one failed or "
                           "was stopped); with --max-restarts, torchrun restarts them all and the run resumes from "
                           "its last.pt") from None
    finally:
        dist.destroy_process_group()


_groups_joined = itertools.count()  # process groups this process has joined (classify cv: one a fold)


def _init_process_group(backend: str, device: torch.device | None) -> None:
    """init_process_group from the launcher's environment. Under torchrun, the workers meet in
    the agent's store, which outlives a restart: the ranks of an earlier attempt left their
    addresses there, and a restarted gloo group read them and failed to connect (measured, torch
    2.13; pytorch#167288). Each attempt's keys, and each group's within it, get their own prefix."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend, device_id=device)
        return
    agent_store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False)
    store = dist.PrefixStore(f"charrnn/attempt-{restart_count()}/group-{next(_groups_joined)}", agent_store)
    dist.init_process_group(backend, store=store, rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]),
                            device_id=device)


def _lost_contact(exc: BaseException) -> bool:
    """Whether a collective failed because another rank went away (killed, or failed on its own),
    which is torchrun's to handle, rather than a fault of this process."""
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc)
    return any(sign in text for sign in ("gloo/transport", "Connection reset by peer", "Connection closed by peer", "NCCL"))


@dataclass(frozen=True)
class Ranks:
    """This process's place among the processes training together: its rank and how many there
    are. Ranks() is a plain process (rank 0 of 1), for which every collective is the identity."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the process group joined (see process_group), else a plain process."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def parallel(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 writes checkpoints, the log and the progress; the others are quiet."""
        return self.rank == 0

    def share(self, total: int, what: str) -> range:
        """This rank's equal, contiguous share of total rows (a global batch): rank r of N takes
        rows [r * total / N, (r + 1) * total / N). Refuses a total that does not divide evenly, so
        that N processes train on exactly the batch one process would."""
        if total % self.world_size:
            raise UsageError(f"{what} {total} does not divide among the {self.world_size} processes training "
                             f"together; give a multiple of {self.world_size}")
        size = total // self.world_size
        return range(self.rank * size, (self.rank + 1) * size)

    def part(self, total: int) -> range:
        """This rank's contiguous part of total items of work (an evaluation's rows or batches),
        as even as it can be; some ranks may get none."""
        return range(total * self.rank // self.world_size, total * (self.rank + 1) // self.world_size)

    def sum(self, values: list[float]) -> list[float]:
        """The values summed over all ranks (float64): what makes a sharded evaluation's figure the
        one a single process would compute, since sums add up and means do not."""
        if not self.parallel:
            return list(values)
        summed = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(summed)
        return summed.tolist()

    def gather_rows(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's tensor joined along dim in rank order (each rank's share of a batch back
        into the whole batch)."""
        if not self.parallel:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=dim)

    def gather(self, value: T) -> list[T]:
        """Every rank's value (any picklable object), in rank order."""
        if not self.parallel:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def from_writer(self, compute: Callable[[], T]) -> T:
        """What rank 0 computes, given to every rank (a choice that must agree everywhere, such as
        settings chosen from timing steps); the other ranks wait for it and compute nothing."""
        if not self.parallel:
            return compute()
        box = [compute() if self.is_writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()


def _collective_device() -> torch.device:
    """Where a collective's tensors must live: the GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
