"""Multi-process training under torchrun: process group, DDP / FSDP wrapping, data sharding, rank-0 writes.

`python -m omnihuman_core train ...` is the same command with one process or many:

    torchrun --nproc_per_node 2 -m omnihuman_core train mmdit ...          # 2 processes, this machine

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR; `setup()` reads them, joins the process group
(NCCL on CUDA, gloo on CPU) and puts each process on its own GPU. Models are wrapped with DDP (every rank
holds the whole model, gradients are averaged) or, with `--fsdp`, FSDP2's `fully_shard` (parameters,
gradients and optimiser state sharded over the ranks: for configs that do not fit one device). Modules the
loss calls through a method other than `forward` (the text encoder's `encode`) cannot be wrapped, so their
gradients are averaged by `all_reduce_grads` after backward, which is what DDP does for the others.
Every rank draws a different share of the data (`rank` / `world` in the batch sources); only rank 0
writes checkpoints, logs and exported weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import InputError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: its rank among `world` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None = single process, no process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | torch.device | None = None) -> DistInfo:
    """Join the torchrun process group when there is one; otherwise a single-process `DistInfo`.

    `device` None picks CUDA when available. Under torchrun each process takes `cuda:LOCAL_RANK`.
    """
    want = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not launched_by_torchrun():
        return DistInfo(device=want)
    import torch.distributed as dist

    world = int(os.environ["WORLD_SIZE"])
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if want.type == "cuda":
        if torch.cuda.device_count() <= local_rank:
            raise InputError(f"process {rank} wants cuda:{local_rank} but this machine has "
                             f"{torch.cuda.device_count()} GPU(s); lower --nproc_per_node")
        want = torch.device("cuda", local_rank)
        torch.cuda.set_device(want)
    backend = "nccl" if want.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, device=want,
                    backend=backend)


def init_from_file(init_file: str, rank: int, world: int, device: str | torch.device = "cpu") -> DistInfo:
    """Join a process group through a shared file (tests and launchers other than torchrun)."""
    import torch.distributed as dist

    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world)
    return DistInfo(rank=rank, world=world, local_rank=rank, device=dev, backend=backend)


def cleanup(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def wrap(module: nn.Module, info: DistInfo, fsdp: bool = False) -> nn.Module:
    """DDP (default) or FSDP2 around `module` when distributed; the module itself otherwise.

    The caller's loss must call the returned object (its `forward`), which is where DDP / FSDP hook in.
    FSDP shards each transformer block separately (`blocks.*`), then the rest, so only one block's
    parameters are gathered at a time.
    """
    if not info.distributed:
        return module
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for child in getattr(module, "blocks", []):
            fully_shard(child)
        fully_shard(module)
        return module
    from torch.nn.parallel import DistributedDataParallel

    # find_unused_parameters: the last MMDiT block drops the text stream's output, and stage "base" never
    # feeds the audio branch; a parameter without a gradient would otherwise stop DDP.
    return DistributedDataParallel(module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                                   find_unused_parameters=True)


def unwrap(module: nn.Module) -> nn.Module:
    """The user's module inside a DDP wrapper (FSDP2 shards in place, so it is already the module)."""
    from torch.nn.parallel import DistributedDataParallel

    return module.module if isinstance(module, DistributedDataParallel) else module


def is_ddp(module: nn.Module) -> bool:
    from torch.nn.parallel import DistributedDataParallel

    return isinstance(module, DistributedDataParallel)


def is_fsdp(module: nn.Module) -> bool:
    try:
        from torch.distributed.fsdp import FSDPModule
    except ImportError:  # torch without FSDP2
        return False
    return any(isinstance(m, FSDPModule) for m in module.modules())


def is_dtensor(t) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:
        return False
    return isinstance(t, DTensor)


def full_tensor(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly FSDP-sharded) parameter or buffer; a collective for DTensors."""
    return t.full_tensor() if is_dtensor(t) else t


def all_reduce_grads(params, info: DistInfo) -> None:
    """Average the gradients of `params` over the ranks (for modules outside DDP / FSDP)."""
    if not info.distributed:
        return
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    # One flat buffer, one collective: per-tensor all_reduce costs a round trip each.
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def clip_grad_norm(params, max_norm: float, info: DistInfo) -> float:
    """Clip the global gradient norm to `max_norm`; returns the norm before clipping.

    Plain tensors (single process, DDP) go through torch's own clipping. FSDP-sharded gradients hold only
    each rank's shard, so their squared norms are summed over the ranks before clipping.
    """
    params = [p for p in params if p.grad is not None]
    if not params:
        return 0.0
    if not any(is_dtensor(p.grad) for p in params):
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    import torch.distributed as dist

    local = torch.zeros((), dtype=torch.float64, device=info.device)
    replicated = torch.zeros((), dtype=torch.float64, device=info.device)
    for p in params:
        if is_dtensor(p.grad):
            local += p.grad.to_local().double().pow(2).sum().to(info.device)
        else:
            replicated += p.grad.double().pow(2).sum().to(info.device)
    dist.all_reduce(local)
    total = float((local + replicated).sqrt())
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for p in params:
            p.grad.mul_(scale)
    return total


def broadcast_int(value: int, info: DistInfo) -> int:
    """Rank 0's `value` on every rank (stop decisions: every rank must leave the loop at the same step)."""
    if not info.distributed:
        return int(value)
    import torch.distributed as dist

    t = torch.tensor([int(value)], dtype=torch.long, device=info.device if info.backend == "nccl" else "cpu")
    dist.broadcast(t, 0)
    return int(t.item())


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_gather_object(obj, info: DistInfo) -> list:
    if not info.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank (modules outside DDP, which does this itself)."""
    if not info.distributed:
        return
    import torch.distributed as dist

    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if not is_dtensor(t):
                dist.broadcast(t.data, 0)


def is_main_print(message: str, info: DistInfo) -> None:
    """Print `message` to stderr from rank 0 only (one progress line, not one per process)."""
    if info.is_main:
        import sys

        print(message, file=sys.stderr, flush=True)
