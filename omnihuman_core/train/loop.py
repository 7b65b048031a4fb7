"""The training loop every model of the pack uses: AdamW, clipping, EMA, resumable checkpoints, logs, budgets.

`Trainer(modules, params, loss_fn, batches, config, out_dir)` owns one optimisation run:
- AdamW over `params` with a linear warm-up of the learning rate, the global gradient norm clipped to
  `grad_clip` (1.0, the paper's value, METHOD section 7), and an EMA of every trained parameter (the
  exported weights: an average over the last few hundred steps samples better than the last step).
- Bit-exact resume. Every random draw of step `k` comes from generators re-seeded from (seed, rank, k):
  the loss's `generator`, torch's global RNG (dropout), numpy's and Python's; and batch `k` is a pure
  function of `k` (`batches.batch(k)`, or `batches.iterate(start=k)`). So the checkpoint only needs the
  weights, the EMA, the optimiser state and the step, and a run killed at any point and resumed ends
  with the same weights, EMA and optimiser state as one that never stopped.
- Checkpoints are written to a temporary file, flushed to disk and renamed over the old one: a kill or a
  power cut during a write leaves the previous checkpoint intact. Ctrl-C / SIGTERM finish the current step,
  write a checkpoint and return (a second Ctrl-C aborts at once).
- Budgets: `config.steps` (total optimiser steps) and `config.minutes` (total training time over all
  resumes) end the run ("done"); `run(max_minutes=...)` ends this invocation early ("paused"), with a
  checkpoint, for machines that only grant time slices.
- A checkpoint records the run's identity (`run_info`: model config, stage, data, ...); resuming with a
  different one stops with a message naming both.
- Logs: `OUT/log.jsonl` (one JSON record per `log_every` steps) and a progress line.
- torchrun: the caller wraps models with `distributed.wrap` (DDP / FSDP) and passes the wrapped ones;
  gradients of unwrapped trained modules are averaged here; only rank 0 writes.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from ..errors import InputError, OmniHumanError
from . import distributed as D

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
CHECKPOINT_FORMAT = 1
# Training precisions: float32, or bfloat16 autocast (float16 would need loss scaling; not offered).
PRECISIONS = ("float32", "bfloat16")
# Losses averaged for the reported final loss.
FINAL_LOSS_WINDOW = 50


def fast_precision(device) -> str:
    """bfloat16 where the hardware multiplies it natively (CUDA with bf16, a CPU with AMX or AVX512-BF16),
    else float32 (emulated bfloat16 would be slower than float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, so looked up defensively
        if any(getattr(torch.cpu, name, lambda: False)() for name in probes):
            return "bfloat16"
    return "float32"


class TrainingDiverged(OmniHumanError):
    """The loss became NaN or infinite; the last checkpoint is kept, the message says what to change."""


@dataclass
class TrainConfig:
    """Optimisation settings of one run (the model and data are the caller's)."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    warmup: int = 0  # steps of linear learning-rate warm-up
    # Fraction of the run (of its --steps, else of its --minutes) at the end over which the learning rate falls
    # linearly to 0 (a warm-up / stable / decay schedule; 0 = constant after the warm-up). Because the stable
    # phase does not depend on it, a finished constant-rate run can be continued into a cooldown.
    cooldown: float = 0.0
    steps: int = 0  # stop after this many optimiser steps (0 = no step limit)
    minutes: float = 0.0  # stop after this much training time in total, over all resumes (0 = no limit)
    batch_size: int = 1  # per process; recorded here, the batch source makes the batches
    log_every: int = 10
    ckpt_every: int = 200  # steps between checkpoints
    ckpt_minutes: float = 10.0  # ... and at most this many minutes between them
    seed: int = 0
    # "bfloat16": the loss's forward runs under torch.autocast(bfloat16) (matmuls and convolutions in bf16,
    # weights, gradients, optimiser state and EMA stay float32). On GPUs and on CPUs with AMX / AVX512-BF16
    # this is 1.5-2x faster per step for the demo models; elsewhere it can be slower, so float32 is the default.
    precision: str = "float32"

    # Settings that do not change what a step computes: they may differ between a run and its resume.
    RESUMABLE = ("steps", "minutes", "log_every", "ckpt_every", "ckpt_minutes", "cooldown")

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        problems = []
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0, got {self.grad_clip}")
        for name in ("warmup", "steps", "batch_size", "log_every", "ckpt_every", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < (1 if name in ("batch_size", "log_every", "ckpt_every") else 0):
                problems.append(f"{name} must be a non-negative integer{' >= 1' if name in ('batch_size', 'log_every', 'ckpt_every') else ''}, got {v!r}")
        if isinstance(self.cooldown, bool) or not 0 <= self.cooldown < 1:
            problems.append(f"cooldown must be a fraction of the run in [0, 1), got {self.cooldown!r}")
        if self.minutes < 0 or self.ckpt_minutes <= 0:
            problems.append(f"minutes must be >= 0 and ckpt_minutes > 0, got {self.minutes} / {self.ckpt_minutes}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.steps <= 0 and self.minutes <= 0:
            problems.append("give a budget: steps > 0 (--steps) or minutes > 0 (--minutes)")
        if problems:
            raise InputError("training settings: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must share with its checkpoint."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE}


@dataclass
class TrainResult:
    status: str  # "done" (a budget reached), "paused" (max_minutes of this invocation), "interrupted"
    step: int
    minutes: float  # total training time over all resumes
    final_loss: float | None  # mean of the last FINAL_LOSS_WINDOW losses
    last_stats: dict[str, float]

    @property
    def done(self) -> bool:
        return self.status == "done"


def _fused_ok(params) -> bool:
    """Fused AdamW needs float parameters on one CPU / CUDA device (not DTensors of FSDP, not meta)."""
    devices = {p.device.type for p in params}
    return len(devices) == 1 and devices <= {"cpu", "cuda"} and all(
        p.is_floating_point() and type(p.data) is torch.Tensor for p in params)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of every generator at (run seed, rank, step): independent streams, nothing to save."""
    return int(np.random.SeedSequence([int(seed), int(rank), int(step), 0x7A1]).generate_state(1, np.uint64)[0] >> 1)


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _json_safe(value):
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _with_added_later(record: Mapping, added_later: Mapping) -> dict:
    """`record` with every key of `added_later` it lacks filled in, nested mappings recursively: a run record
    written before a setting existed then reads as having that setting's old value."""
    out = dict(record)
    for k, v in added_later.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, Mapping) and isinstance(out[k], Mapping):
            out[k] = _with_added_later(out[k], v)
    return out


def _describe_difference(saved: Mapping, now: Mapping, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k, "<absent>"), now.get(k, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _describe_difference(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: checkpoint {a!r}, now {b!r}")
    return out


class Trainer:
    """One optimisation run; see the module docstring. `run()` trains until a budget ends it."""

    def __init__(
        self,
        modules: Mapping[str, nn.Module],
        params: Iterable[nn.Parameter],
        loss_fn: Callable[[Any, torch.Generator], tuple[torch.Tensor, Mapping[str, float]]],
        batches,
        config: TrainConfig,
        out_dir,
        *,
        run_info: Mapping[str, Any] | None = None,
        added_later: Mapping[str, Any] | None = None,
        dist: D.DistInfo | None = None,
        log: Callable[[str], None] | None = _stderr,
    ):
        self.modules = dict(modules)
        self.raw = {name: D.unwrap(m) for name, m in self.modules.items()}
        self.config = config
        self.out_dir = Path(out_dir)
        self.dist = dist or D.DistInfo()
        self.log = log or (lambda msg: None)
        self.loss_fn = loss_fn
        self.batches = batches
        self.run_info = _json_safe(dict(run_info or {}))
        # Settings of run_info added after checkpoints were already being written, each with the value every
        # earlier run trained with (nested like run_info): a checkpoint that lacks one still resumes when this
        # run uses that value, and is refused, naming the setting, when it does not.
        self.added_later = _json_safe(dict(added_later or {}))
        seen: set[int] = set()
        self.params = [p for p in params if not (id(p) in seen or seen.add(id(p)))]
        if not self.params:
            raise InputError("nothing to train: the parameter list is empty")
        owner = {id(p): name for name, m in self.raw.items() for p in m.parameters()}
        stray = [i for i, p in enumerate(self.params) if id(p) not in owner]
        if stray:
            raise ValueError(f"{len(stray)} trained parameter(s) belong to none of the modules {sorted(self.raw)} "
                             "(under FSDP, collect the parameters after distributed.wrap: it replaces them)")
        self.fsdp = any(D.is_fsdp(m) for m in self.raw.values())
        # Gradients of trained modules that no DDP / FSDP wrapper averages are averaged by hand.
        wrapped = {id(p) for name, m in self.modules.items() if D.is_ddp(m) or D.is_fsdp(m) for p in m.parameters()}
        self.manual_sync = [p for p in self.params if id(p) not in wrapped]
        for name, m in self.modules.items():
            if not (D.is_ddp(m) or D.is_fsdp(m)):
                D.broadcast_module(m, self.dist)  # every rank starts from rank 0's weights
        # fused: one kernel over all parameters (torch >= 2.4 on CPU and CUDA), ~2x cheaper than the
        # per-tensor loop for the demo models' hundreds of small tensors; the same update up to rounding.
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=config.betas,
                                           weight_decay=config.weight_decay, fused=_fused_ok(self.params))
        trained = {id(p) for p in self.params}
        # EMA of the trained parameters only, in float32 (frozen ones and buffers are exported as they are).
        self.ema: dict[str, dict[str, torch.Tensor]] = {
            name: {k: p.detach().float().clone() for k, p in m.named_parameters() if id(p) in trained}
            for name, m in self.raw.items()
        }
        self.step = 0
        self.elapsed = 0.0  # training seconds over all invocations
        self.progress = 0.0  # fraction of the budget done, as the cooldown reads it (run() sets it per step)
        self.recent_losses: collections.deque[float] = collections.deque(maxlen=FINAL_LOSS_WINDOW)
        self.generator = torch.Generator()
        self._stop_requested = False
        self._iterator = None
        self._iterator_step = -1

    # ---- paths --------------------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_NAME

    # ---- data ---------------------------------------------------------------------------------------------
    def _batch(self, step: int):
        src = self.batches
        if hasattr(src, "batch"):
            return src.batch(step)
        if self._iterator is None or self._iterator_step != step:
            if hasattr(src, "iterate"):
                self._iterator = iter(src.iterate(start=step))
            else:  # a plain iterable: replay it up to the resume position
                self._iterator = iter(src)
                for _ in range(step):
                    next(self._iterator)
            self._iterator_step = step
        self._iterator_step += 1
        return next(self._iterator)

    # ---- state --------------------------------------------------------------------------------------------
    def _module_state(self, name: str) -> dict[str, torch.Tensor]:
        """Full (unsharded) state dict of one module; a collective under FSDP (call on every rank)."""
        return {k: D.full_tensor(v).detach().cpu() for k, v in self.raw[name].state_dict().items()}

    def _optimizer_state(self):
        if not self.fsdp:
            return self.optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(nn.ModuleDict(self.raw), self.optimizer,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (collective under FSDP; meaningful on rank 0)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "elapsed": self.elapsed,
            "recent_losses": list(self.recent_losses),
            "config": json.dumps(self.config.identity(), sort_keys=True),
            "run_info": json.dumps(self.run_info, sort_keys=True),
            "modules": {name: self._module_state(name) for name in self.raw},
            "ema": {name: {k: D.full_tensor(v).cpu() for k, v in e.items()} for name, e in self.ema.items()},
            "optimizer": self._optimizer_state(),
            # The data position is the step (batches are a pure function of it); kept for people reading it.
            "data_position": self.step,
        }

    def save_checkpoint(self) -> Path | None:
        """Atomic write of the checkpoint by rank 0 (every rank must call it: FSDP gathers)."""
        state = self.state_dict()
        path = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            path = self.checkpoint_path
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        D.barrier(self.dist)
        return path

    def resume(self) -> bool:
        """Load `OUT/checkpoint.pt` when there is one; False when starting fresh."""
        path = self.checkpoint_path
        if not path.exists():
            return False
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # a checkpoint written by something else, or damaged by hand
            raise InputError(f"{path} cannot be read as a training checkpoint ({e}); delete it to start over") from e
        if state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"{path} has checkpoint format {state.get('format')!r}, this trainer writes "
                             f"{CHECKPOINT_FORMAT}; delete it or use a new work folder")
        saved_cfg, saved_run = json.loads(state["config"]), json.loads(state["run_info"])
        saved_run = _with_added_later(saved_run, self.added_later)
        now_cfg, now_run = _json_safe(self.config.identity()), _with_added_later(self.run_info, self.added_later)
        if saved_cfg != now_cfg or saved_run != now_run:
            diff = _describe_difference({"train": saved_cfg, **saved_run}, {"train": now_cfg, **now_run})
            raise InputError(
                f"the work folder {self.out_dir} holds a checkpoint of a different run, so it cannot resume.\n"
                f"  checkpoint config: {json.dumps({'train': saved_cfg, **saved_run}, sort_keys=True)}\n"
                f"  this run's config: {json.dumps({'train': now_cfg, **now_run}, sort_keys=True)}\n"
                f"  differences: {'; '.join(diff)}\n"
                "Use a new --work folder, or rerun with the checkpoint's settings."
            )
        self._load_modules(state["modules"])
        self._load_ema(state["ema"])
        self._load_optimizer(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.recent_losses = collections.deque(state["recent_losses"], maxlen=FINAL_LOSS_WINDOW)
        self.log(f"resumed {path} at step {self.step} ({self.elapsed / 60:.1f} min trained)")
        return True

    def _load_modules(self, states: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        if set(states) != set(self.raw):
            raise InputError(f"checkpoint holds modules {sorted(states)}, this run trains {sorted(self.raw)}")
        for name, m in self.raw.items():
            if D.is_fsdp(m):
                from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

                set_model_state_dict(m, dict(states[name]), options=StateDictOptions(full_state_dict=True))
            else:
                m.load_state_dict(states[name])

    def _load_ema(self, saved: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
        for name, e in self.ema.items():
            for k in e:
                full = saved[name][k]
                if D.is_dtensor(e[k]):
                    from torch.distributed.tensor import distribute_tensor

                    e[k] = distribute_tensor(full.to(e[k].device_mesh.device_type), e[k].device_mesh, e[k].placements)
                else:
                    e[k] = full.to(e[k].device).float().clone()

    def _load_optimizer(self, state) -> None:
        if not self.fsdp:
            self.optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(nn.ModuleDict(self.raw), self.optimizer, state,
                                 options=StateDictOptions(full_state_dict=True))

    # ---- export -----------------------------------------------------------------------------------------
    def ema_state_dict(self, name: str, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """Module `name`'s state dict with the EMA in place of every trained parameter (full tensors, CPU).

        `dtype` converts floating-point entries (e.g. torch.float16 for shipping); collective under FSDP.
        """
        state = self._module_state(name)
        for k, v in self.ema[name].items():
            state[k] = D.full_tensor(v).cpu()
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        return state

    def ema_module(self, name: str) -> nn.Module:
        """A copy of module `name` carrying the EMA weights (single process: for validation, latent stats)."""
        import copy

        module = copy.deepcopy(self.raw[name])
        module.load_state_dict(self.ema_state_dict(name))
        return module

    def export(self, path, name: str, kind: str, config: Mapping[str, Any], extra: Mapping[str, object] | None = None,
               dtype: torch.dtype | None = torch.float16) -> Path | None:
        """Write module `name`'s EMA weights with `weights.save_safetensors` (rank 0; every rank must call it)."""
        from ..weights import save_safetensors

        state = self.ema_state_dict(name, dtype)
        out = None
        if self.dist.is_main:
            record = {"steps": self.step, "minutes": round(self.elapsed / 60, 2), "final_loss": self.final_loss}
            out = save_safetensors(path, state, kind, dict(config), extra={"training": record, **dict(extra or {})})
        D.barrier(self.dist)
        return out

    @property
    def final_loss(self) -> float | None:
        return round(float(np.mean(self.recent_losses)), 6) if self.recent_losses else None

    # ---- one step ---------------------------------------------------------------------------------------
    def _seed_step(self) -> None:
        s = step_seed(self.config.seed, self.dist.rank, self.step)
        self.generator.manual_seed(s)
        torch.manual_seed(s ^ 0x5EED)
        np.random.seed(s % 2**32)
        random.seed(s)

    def _lr(self, step: int) -> float:
        warm = self.config.warmup
        lr = self.config.lr * min(1.0, (step + 1) / warm) if warm else self.config.lr
        cool = self.config.cooldown
        return lr * min(1.0, max(0.0, (1.0 - self.progress) / cool)) if cool else lr

    def _run_progress(self) -> float:
        """How far through its budget the run is, 0..1: the further of its steps and its minutes."""
        cfg = self.config
        done = [self.step / cfg.steps] if cfg.steps else []
        if cfg.minutes:
            done.append(self.elapsed / (cfg.minutes * 60))
        return min(max(done, default=0.0), 1.0)

    def train_step(self) -> dict[str, float]:
        """One optimiser step on batch `self.step`; returns the loss's stats plus grad_norm and lr."""
        cfg = self.config
        self._seed_step()
        lr = self._lr(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        batch = self._batch(self.step)
        with torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bfloat16"):
            loss, stats = self.loss_fn(batch, self.generator)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the loss became {value} at step {self.step}; the last checkpoint in {self.out_dir} is intact. "
                f"Lower the learning rate (now {cfg.lr:g}) or check the data, then rerun to resume"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.distributed:
            D.all_reduce_grads(self.manual_sync, self.dist)
        grad_norm = D.clip_grad_norm(self.params, cfg.grad_clip, self.dist)
        self.optimizer.step()
        self.step += 1
        self._update_ema()
        out = {k: float(v) for k, v in dict(stats).items()}
        out.setdefault("loss", value)
        out["grad_norm"] = grad_norm
        out["lr"] = lr
        self.recent_losses.append(out["loss"])
        return out

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Warm-up of the decay (as in timm / diffusers): early averages would otherwise be dominated by
        # the random initialisation.
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for name, e in self.ema.items():
            params = dict(self.raw[name].named_parameters())
            for k, v in e.items():
                v.lerp_(params[k].detach().float(), 1.0 - decay)

    # ---- the loop --------------------------------------------------------------------------------------
    def _budget_status(self, started: float, max_minutes: float | None) -> str | None:
        cfg = self.config
        if cfg.steps and self.step >= cfg.steps:
            return "done"
        if cfg.minutes and self.elapsed >= cfg.minutes * 60:
            return "done"
        if self._stop_requested:
            return "interrupted"
        if max_minutes is not None and time.monotonic() - started >= max_minutes * 60:
            return "paused"
        return None

    def _install_signals(self):
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}

        def handler(signum, frame):
            if self._stop_requested:  # second signal: stop now (the last checkpoint is intact)
                raise KeyboardInterrupt
            self._stop_requested = True
            self.log("stop requested: finishing this step and writing a checkpoint (Ctrl-C again aborts)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    def run(self, max_minutes: float | None = None) -> TrainResult:
        """Train until a budget ends the run; checkpoints on the way and at the end."""
        cfg = self.config
        codes = {None: 0, "done": 1, "paused": 2, "interrupted": 3}
        names = {v: k for k, v in codes.items()}
        started = time.monotonic()
        last_ckpt = started
        window: dict[str, list[float]] = collections.defaultdict(list)
        window_start = time.monotonic()
        logf = None
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            logf = open(self.log_path, "a", encoding="utf-8")
        previous = self._install_signals()
        stats: dict[str, float] = {}
        status = None
        try:
            for m in self.raw.values():
                m.train()
            while True:
                status = names[D.broadcast_int(codes[self._budget_status(started, max_minutes)], self.dist)]
                if status is not None:
                    break
                if cfg.cooldown:
                    # Rank 0's clock decides a minutes budget's progress, so every rank steps with the same rate.
                    self.progress = D.broadcast_int(round(self._run_progress() * 1e6), self.dist) / 1e6
                t0 = time.monotonic()
                stats = self.train_step()
                self.elapsed += time.monotonic() - t0
                for k, v in stats.items():
                    window[k].append(v)
                if self.step % cfg.log_every == 0:
                    self._log_window(window, time.monotonic() - window_start, logf)
                    window.clear()
                    window_start = time.monotonic()
                due = self.step % cfg.ckpt_every == 0
                due_time = D.broadcast_int(int(time.monotonic() - last_ckpt >= cfg.ckpt_minutes * 60), self.dist)
                if due or due_time:
                    t1 = time.monotonic()
                    self.save_checkpoint()
                    self.elapsed += time.monotonic() - t1
                    last_ckpt = time.monotonic()
            if window:
                self._log_window(window, time.monotonic() - window_start, logf)
            self.save_checkpoint()
        finally:
            for sig, h in previous.items():
                signal.signal(sig, h)
            if logf is not None:
                logf.close()
        result = TrainResult(status, self.step, round(self.elapsed / 60, 3), self.final_loss, stats)
        if status != "done":
            self.log(f"{status} at step {self.step}: checkpoint written to {self.checkpoint_path}; "
                     "rerun the same command to continue")
        return result

    def _log_window(self, window: Mapping[str, list[float]], seconds: float, logf) -> None:
        if not self.dist.is_main or not window:
            return
        n = len(next(iter(window.values())))
        record = {"step": self.step, **{k: round(float(np.mean(v)), 6) for k, v in window.items()},
                  "s_per_step": round(seconds / max(n, 1), 3), "minutes": round(self.elapsed / 60, 3)}
        if logf is not None:
            logf.write(json.dumps(record) + "\n")
            logf.flush()
        cfg = self.config
        parts = [f"step {self.step}" + (f"/{cfg.steps}" if cfg.steps else "")]
        parts += [f"loss {record['loss']:.4f}", f"|g| {record['grad_norm']:.3f}", f"{record['s_per_step']:.2f} s/step"]
        parts.append(f"{record['minutes']:.1f}" + (f"/{cfg.minutes:g}" if cfg.minutes else "") + " min")
        if cfg.steps:
            left = (cfg.steps - self.step) * record["s_per_step"] / 60
            if cfg.minutes:
                left = min(left, cfg.minutes - record["minutes"])
            parts.append(f"eta {max(left, 0):.1f} min")
        elif cfg.minutes:
            parts.append(f"eta {max(cfg.minutes - record['minutes'], 0):.1f} min")
        self.log("  ".join(parts))
