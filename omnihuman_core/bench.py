"""`python -m omnihuman_core bench`: CPU micro-benchmarks of the MMDiT and the segment chainer.

Every timing runs on one thread (`torch.set_num_threads(1)`), alternates the implementations inside each
round (A B, then B A, ...) and reports the MEDIAN OF PAIRED RATIOS over at least `--rounds` rounds, which
cancels most of the drift of a shared, noisy machine. A MISS is reported, never turned into a failure.
See BENCHMARKS.md for what each benchmark measures and the numbers of a real run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = ("block", "matmul", "audio", "pseudo", "chain", "base", "render")


def add_bench_parser(subparsers) -> None:
    p = subparsers.add_parser("bench", help="CPU benchmarks (paired, median of ratios) and the base-model cost report")
    p.add_argument("--only", default=None, metavar="NAME[,NAME]",
                   help=f"comma-separated subset of: {', '.join(BENCHMARKS)} (default: all)")
    p.add_argument("--rounds", type=int, default=15, help="paired rounds per timing (default 15)")
    p.add_argument("--quick", action="store_true", help="smoke run: smaller shapes (numbers not meaningful)")
    p.add_argument("--gpu-tflops", type=float, default=989.0,
                   help="dense TFLOP/s of the GPU for the base seconds-per-step bound (default 989: H100 bf16)")
    p.add_argument("--models", type=Path, default=None,
                   help="render: folder with mmdit/vae/text_encoder.safetensors (default: the shipped models/demo)")
    p.add_argument("--child-segments", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run_bench)


# ---- helpers -------------------------------------------------------------------------------------------
class Row:
    def __init__(self, name: str, metric: str, value: float | None, target: str, ok: bool | None, note: str = ""):
        self.name, self.metric, self.value, self.target, self.ok, self.note = name, metric, value, target, ok, note

    @property
    def status(self) -> str:
        return "INFO" if self.ok is None else ("PASS" if self.ok else "MISS")


def _paired(fns: dict, rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall times of each callable, alternating the order every round."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            fns[n]()
            times[n].append(time.perf_counter() - t0)
    return times


def _median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def _demo_call(model, frames: int, grid: int, text_tokens: int, audio_per_frame: int, *, batch: int = 1,
               pseudo: bool = False, audio: bool = True, seed: int = 0):
    """A no-grad forward of `model` on random inputs: `frames` latent frames of grid x grid latents."""
    import torch

    c = model.config
    g = torch.Generator().manual_seed(seed)
    T = frames + (1 if pseudo else 0)
    x = torch.randn(batch, c.in_channels, T, grid, grid, generator=g)
    fp = torch.arange(frames, dtype=torch.float32)
    if pseudo:
        fp = torch.cat((fp, torch.tensor([frames - 1 + 4.0])))
    text = torch.randn(batch, text_tokens, c.text_dim, generator=g)
    a = torch.randn(batch, frames, audio_per_frame, c.audio_dim, generator=g) if audio else None
    t = torch.full((batch,), 0.5)

    def call():
        with torch.no_grad():
            return model(x, t, text, a, frame_positions=fp)

    return call


def _video_tokens(cfg, frames: int, grid: int) -> int:
    pt, ph, pw = cfg.patch_size
    return (frames // pt) * (grid // ph) * (grid // pw)


# ---- benchmarks ----------------------------------------------------------------------------------------
def bench_block(args) -> list[Row]:
    import torch

    from .model import JointBlock, build_rope, default_rope_axes

    try:
        from diffusers.models.attention import JointTransformerBlock
    except Exception as e:  # diffusers missing or broken
        print(f"block: SKIP (diffusers not importable: {e})")
        return [Row("block", "ours / SD3 time", None, "<= 1.00", None, "SKIP: diffusers missing")]
    hidden, heads = 384, 6
    frames, grid, nt, apf = (6, 16, 32, 8) if not args.quick else (2, 8, 8, 4)
    nv, na = frames * grid * grid, frames * apf  # 1536 video, 32 text, 48 audio tokens
    torch.manual_seed(0)
    ours = JointBlock(hidden, heads).eval()
    theirs = JointTransformerBlock(hidden, heads, hidden // heads, qk_norm="rms_norm").eval()
    g = torch.Generator().manual_seed(0)
    video, text, audio = (torch.randn(1, n, hidden, generator=g) for n in (nv, nt, na))
    cond = torch.randn(1, hidden, generator=g)
    rope = build_rope(torch.arange(frames, dtype=torch.float32), (grid, grid), nt, frames, apf,
                      default_rope_axes(hidden // heads))
    hidden_sd3 = torch.cat((video, audio), 1)

    def run_ours(r=None):
        with torch.no_grad():
            ours(video, text, audio, cond, r)

    def run_theirs():
        with torch.no_grad():
            theirs(hidden_sd3, text, cond)

    times = _paired({"ours": run_ours, "ours_rope": lambda: run_ours(rope), "sd3": run_theirs}, args.rounds)
    shape = f"{nv}+{nt}+{na} tok, w{hidden} h{heads}"
    r1 = _median_ratio(times["ours"], times["sd3"])
    r2 = _median_ratio(times["ours_rope"], times["sd3"])
    return [
        Row("block", "JointBlock / SD3 JointTransformerBlock", r1, "<= 1.00", r1 <= 1.0, shape + ", no RoPE (like SD3)"),
        Row("block+rope", "JointBlock with RoPE / SD3", r2, "info", None, f"{statistics.median(times['sd3']) * 1e3:.1f} ms SD3"),
    ]


def bench_matmul(args) -> list[Row]:
    import torch

    from .model import MMDiT, MMDiTConfig, forward_flops, tune_cpu_allocator

    tuned = tune_cpu_allocator()
    cfg = MMDiTConfig.preset("demo")
    torch.manual_seed(0)
    model = MMDiT(cfg).eval()
    batch = 4
    frames, grid, nt, apf = (8, 16, 32, 2) if not args.quick else (2, 8, 8, 2)
    nv, na = _video_tokens(cfg, frames, grid), frames * apf
    call = _demo_call(model, frames, grid, nt, apf, batch=batch)
    f_model = forward_flops(cfg, nv, nt, na, batch=batch)
    tokens = batch * (nv + nt + na)
    a = torch.randn(tokens, cfg.hidden)
    b = torch.randn(cfg.hidden, 4 * cfg.hidden)
    f_mm = 2 * tokens * cfg.hidden * 4 * cfg.hidden

    def mm():
        torch.matmul(a, b)

    times = _paired({"model": call, "matmul": mm}, args.rounds)
    ratios = [(f_model / tm) / (f_mm / tx) for tm, tx in zip(times["model"], times["matmul"])]
    r = statistics.median(ratios)
    gm = f_model / statistics.median(times["model"]) / 1e9
    gx = f_mm / statistics.median(times["matmul"]) / 1e9
    return [Row("matmul", "demo forward FLOP/s / matmul FLOP/s", r, ">= 0.70", r >= 0.7,
                f"B{batch} {tokens} tok; {gm:.1f} vs {gx:.1f} GFLOP/s; allocator tuned={tuned}")]


def bench_audio(args) -> list[Row]:
    import torch

    from .model import MMDiT, MMDiTConfig

    cfg = MMDiTConfig.preset("demo")
    torch.manual_seed(0)
    model = MMDiT(cfg).eval()
    frames, grid, nt, apf = (8, 16, 32, 2) if not args.quick else (2, 8, 8, 2)
    nv, na = _video_tokens(cfg, frames, grid), frames * apf
    times = _paired({"audio": _demo_call(model, frames, grid, nt, apf),
                     "none": _demo_call(model, frames, grid, nt, apf, audio=False)}, args.rounds)
    r = _median_ratio(times["audio"], times["none"])
    return [Row("audio", "forward with audio / audio=None", r, "<= 1.10", r <= 1.10,
                f"{nv} video / {na} audio tok = {nv / na:.0f}:1")]


def bench_pseudo(args) -> list[Row]:
    import torch

    from .model import MMDiT, MMDiTConfig

    cfg = MMDiTConfig.preset("demo")
    torch.manual_seed(0)
    model = MMDiT(cfg).eval()
    frames, grid, nt, apf = (8, 16, 32, 2) if not args.quick else (2, 8, 8, 2)
    nv, na = _video_tokens(cfg, frames, grid), frames * apf
    extra = _video_tokens(cfg, 1, grid)
    share = extra / (nv + nt + na)
    times = _paired({"pseudo": _demo_call(model, frames, grid, nt, apf, pseudo=True),
                     "plain": _demo_call(model, frames, grid, nt, apf)}, args.rounds)
    r = _median_ratio(times["pseudo"], times["plain"])
    limit = 1 + share + 0.05
    return [Row("pseudo", "forward with pseudo last frame / without", r, f"<= {limit:.3f}", r <= limit,
                f"+{extra} tok on {nv + nt + na} (share {share:.3f})")]


def _chain_parts(quick: bool):
    import torch

    from .model import MMDiT, MMDiTConfig
    from .pipeline import RenderSettings
    from .text import BuiltinTextEncoder
    from .vae import CausalVideoVAE

    torch.manual_seed(0)
    model = MMDiT(MMDiTConfig.preset("tiny")).eval()
    with torch.no_grad():
        for p in model.final.parameters():
            p.normal_(0, 0.05)
    parts = (model, CausalVideoVAE.from_config("tiny").eval(), BuiltinTextEncoder.from_config("tiny").eval())
    settings = RenderSettings(segment_frames=9, motion_frames=5, steps=2, shift=3.0, audio_window=3)
    latent = 2 if quick else 8  # 16 or 64 px squares
    return parts, settings, latent


def _chain_run(parts, settings, latent: int, segments: int) -> None:
    import numpy as np
    import torch

    from .pipeline import SegmentChainer

    chainer = SegmentChainer(*parts, settings)
    step = settings.segment_frames - settings.motion_frames
    n = settings.segment_frames + (segments - 1) * step
    af = torch.randn(n, 3, 8, generator=torch.Generator().manual_seed(0))  # 3 x 8 = tiny audio_dim 24
    ref = torch.randn(1, 4, 1, latent, latent, generator=torch.Generator().manual_seed(1))
    count = [0]

    def sink(frames: np.ndarray) -> None:  # streamed and dropped, as when writing an MP4
        count[0] += frames.shape[0]

    chainer.run(n, ["a person talks"] * segments, reference_latent=ref, audio_frames=af, seed=5, on_frames=sink)
    assert count[0] == n, (count[0], n)


def _child_rss_mb(segments: int, quick: bool) -> tuple[float, float]:
    """(peak RSS at the end, peak RSS after building the components) of a child rendering `segments`."""
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "omnihuman_core", "bench", "--child-segments", str(segments)]
    if quick:
        cmd.append("--quick")
    out = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True).stdout
    _, setup, peak = out.strip().splitlines()[-1].split()
    return float(peak), float(setup)


def _child_main(args) -> int:
    import resource

    parts, settings, latent = _chain_parts(args.quick)
    latent = latent if args.quick else 2 * latent  # 128 px: frame buffers a bit more visible
    setup = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _chain_run(parts, settings, latent, args.child_segments)
    print(f"maxrss_mb {setup:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.2f}")
    return 0


def bench_chain(args) -> list[Row]:
    parts, settings, latent = _chain_parts(args.quick)

    def four_chained():
        _chain_run(parts, settings, latent, 4)

    def four_single():
        for _ in range(4):
            _chain_run(parts, settings, latent, 1)

    times = _paired({"chain4": four_chained, "4x1": four_single}, args.rounds)
    r = _median_ratio(times["chain4"], times["4x1"])
    (rss1, base1), (rss8, base8) = _child_rss_mb(1, args.quick), _child_rss_mb(8, args.quick)
    px = latent * 8
    mem_px = px if args.quick else 2 * px
    return [
        Row("chain", "4 chained segments / 4 x 1 segment time", r, "<= 1.05", r <= 1.05,
            f"tiny components, {px}x{px}px, 9-frame segments, 2 steps"),
        Row("chain.mem", "peak RSS 8 segments / 1 segment", rss8 / rss1, "<= 1.15", rss8 / rss1 <= 1.15,
            f"{rss8:.0f} vs {rss1:.0f} MB; above setup {rss8 - base8:.0f} vs {rss1 - base1:.0f} MB; {mem_px}px, "
            "separate processes"),
    ]


def _flop_check(cfg, frames: int, grid: int, nt: int, apf: int) -> tuple[int, int]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .model import MMDiT, attention_function, forward_flops, math_attention

    torch.manual_seed(0)
    model = MMDiT(cfg).eval()
    call = _demo_call(model, frames, grid, nt, apf)
    # Explicit matmuls in attention: counted by FlopCounterMode on every torch build.
    with attention_function(math_attention), FlopCounterMode(display=False) as counter:
        call()
    return counter.get_total_flops(), forward_flops(cfg, _video_tokens(cfg, frames, grid), nt, frames * apf)


def bench_base(args) -> list[Row]:
    from .model import MMDiTConfig, base_report, format_report

    report = base_report()
    print("base preset, 480p x 121 frames:")
    print("  " + format_report(report).replace("\n", "\n  "))
    p, n = report["parameters"], report["tokens"]
    step_s = report["flops_per_step"] / (args.gpu_tflops * 1e12)
    rows = [
        Row("base.params", "parameters (B)", p["total"] / 1e9, "info", None,
            f"video {p['video'] / 1e9:.2f} text {p['text'] / 1e9:.2f} audio {p['audio'] / 1e9:.2f}"),
        Row("base.tokens", "tokens per forward", float(n["video"] + n["text"] + n["audio"]), "info", None,
            f"video {n['video']} text {n['text']} audio {n['audio']}"),
        Row("base.flops", "PFLOP per step", report["flops_per_step"] / 1e15, "info", None,
            f"{report['guidance_passes']} guidance passes; {report['flops_per_forward'] / 1e15:.1f} PFLOP/forward"),
        Row("base.gpu", f"min s/step at {args.gpu_tflops:g} TFLOP/s", step_s, "info", None,
            f"x{report['steps']} steps = {step_s * report['steps']:.0f} s/clip at 100% MFU"),
    ]
    frames, grid, nt, apf = (4, 16, 32, 4) if not args.quick else (2, 8, 8, 2)
    for mode in ("branch", "cross_attention"):
        cfg = MMDiTConfig.preset("demo", depth=2, audio_mode=mode)
        counted, formula = _flop_check(cfg, frames, grid, nt, apf)
        diff = 100.0 * (formula - counted) / counted
        rows.append(Row(f"base.check.{mode}", "formula vs FlopCounterMode (%)", diff, "|d| <= 3%", abs(diff) <= 3.0,
                        f"demo depth 2: {formula / 1e9:.2f} vs {counted / 1e9:.2f} GFLOP"))
    return rows


def bench_render(args) -> list[Row]:
    """The README's main command at 5 s: example character + the first 5 s of the example speech, demo models.

    Wall time of the whole `generate` (model loading excluded, MP4 writing included) on every core,
    against the 60 s budget. A matmul throughput probe runs right before, so a slow run on a loaded
    machine shows up in the note rather than as a mystery.
    """
    import tempfile

    import torch

    from .audio import load_audio
    from .pipeline.generate import Renderer, generate

    root = Path(__file__).resolve().parent.parent
    models = args.models or root / "models" / "demo"
    files = {k: models / f"{k}.safetensors" for k in ("mmdit", "vae", "text_encoder")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        return [Row("render", "5 s clip seconds / 60 s budget", None, "<= 1.00", None, f"missing {', '.join(missing)}")]
    seconds = 1.0 if args.quick else 5.0
    sound = load_audio(root / "example_inputs" / "speech.wav")
    n = int(round(seconds * 16000))
    sound.waveform = sound.waveform[:n]
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        a = torch.randn(512, 512)
        t0 = time.perf_counter()
        for _ in range(20):
            a @ a
        gflops = 20 * 2 * 512 ** 3 / (time.perf_counter() - t0) / 1e9
        renderer = Renderer.from_files(files["mmdit"], files["vae"], str(files["text_encoder"]), "mel", device="cpu")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            generate(renderer, root / "example_inputs" / "character.png", sound, "A character talking to the camera.",
                     out_path=Path(tmp) / "clip.mp4", seed=0)
            dt = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    s = renderer.settings
    ratio = dt / 60.0 * (5.0 / seconds)
    return [Row("render", "5 s clip seconds / 60 s budget", ratio, "<= 1.00", ratio <= 1.0,
                f"{dt:.1f} s for {seconds:g} s of video; {s.short_side}p, {s.segment_frames}-frame segments, "
                f"{s.steps} steps; {os.cpu_count()} threads; matmul probe {gflops:.0f} GFLOP/s")]


_RUNNERS = {"block": bench_block, "matmul": bench_matmul, "audio": bench_audio, "pseudo": bench_pseudo,
            "chain": bench_chain, "base": bench_base, "render": bench_render}


def format_table(rows: list[Row]) -> str:
    def val(r: Row) -> str:
        if r.value is None:
            return "-"
        return f"{r.value:.0f}" if abs(r.value) >= 1000 else f"{r.value:.3f}"

    head = ("benchmark", "metric", "value", "target", "result", "notes")
    body = [(r.name, r.metric, val(r), r.target, r.status if r.value is not None else "SKIP", r.note) for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(x[:5], widths)) + "  " + x[5] for x in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 5)
    return "\n".join(line.rstrip() for line in lines)


def run_bench(args) -> int:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if getattr(args, "child_segments", None):
            return _child_main(args)
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # run_bench may be called in-process (tests)


def _run(args) -> int:
    import torch

    names = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else list(BENCHMARKS)
    unknown = [n for n in names if n not in _RUNNERS]
    if unknown:
        from .errors import InputError

        raise InputError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    rounds = max(1, int(args.rounds))
    args.rounds = rounds
    print(f"torch {torch.__version__}, 1 thread, {rounds} paired rounds{' (quick)' if args.quick else ''}; "
          f"values are medians of paired ratios")
    rows: list[Row] = []
    for name in names:
        t0 = time.perf_counter()
        rows += _RUNNERS[name](args)
        print(f"[{name}] done in {time.perf_counter() - t0:.1f} s", flush=True)
    print()
    print(format_table(rows))
    misses = [r.name for r in rows if r.ok is False]
    print(f"\n{len(misses)} MISS{'' if not misses else ': ' + ', '.join(misses)} (a MISS never fails the command)")
    return 0


if __name__ == "__main__":
    _p = argparse.ArgumentParser(prog="python -m omnihuman_core.bench")
    _sub = _p.add_subparsers(dest="command", required=True)
    add_bench_parser(_sub)
    _args = _p.parse_args(["bench", *sys.argv[1:]])
    sys.exit(run_bench(_args))
