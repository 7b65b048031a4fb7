"""The generic Trainer: bit-exact resume, budgets, signals, atomic checkpoints, config checks, export."""

import json

import pytest
import torch
from torch import nn

from omnihuman_core.errors import InputError
from omnihuman_core.train.loop import CHECKPOINT_NAME, TrainConfig, Trainer, TrainingDiverged
from omnihuman_core.weights import load_safetensors


class Toy(nn.Module):
    """Dropout (global RNG) + a frozen layer + a buffer: every kind of state a real model has."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 16)
        self.drop = nn.Dropout(0.3)
        self.b = nn.Linear(16, 3)
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)
        self.register_buffer("count", torch.zeros(()))

    def forward(self, x):
        return self.frozen(self.b(self.drop(torch.relu(self.a(x)))))


class Batches:
    """Batch k is a pure function of k (what the Trainer's resume relies on)."""

    def batch(self, step):
        g = torch.Generator().manual_seed(1000 + step)
        x = torch.randn(4, 6, generator=g)
        return {"x": x, "y": x[:, :3].sin()}


def make(tmp, steps=8, seed=0, run_info=None, batches=None, added_later=None, **cfg):
    torch.manual_seed(seed)
    model = Toy()
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_fn(batch, generator):
        noise = torch.randn(batch["y"].shape, generator=generator) * 0.01
        loss = (model(batch["x"]) - batch["y"] - noise).pow(2).mean()
        return loss, {"noise": float(noise.abs().mean())}

    settings = dict(lr=1e-2, ema_decay=0.9, warmup=3, log_every=2, ckpt_every=3)
    settings.update(cfg)
    config = TrainConfig(steps=steps, seed=seed, **settings)
    trainer = Trainer({"toy": model}, params, loss_fn, batches or Batches(), config, tmp, run_info=run_info or {"m": 1},
                      added_later=added_later, log=None)
    return trainer, model


def snapshot(trainer, model):
    opt = trainer.optimizer.state_dict()
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "ema": {k: v.clone() for k, v in trainer.ema["toy"].items()},
        "opt": {i: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()} for i, s in opt["state"].items()},
        "step": trainer.step,
        "losses": list(trainer.recent_losses),
    }


def assert_same(a, b):
    assert a["step"] == b["step"]
    assert a["losses"] == b["losses"]
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert a["opt"].keys() == b["opt"].keys()
    for i in a["opt"]:
        for k, v in a["opt"][i].items():
            assert torch.equal(v, b["opt"][i][k]) if torch.is_tensor(v) else v == b["opt"][i][k]


def test_resume_equals_uninterrupted_run(tmp_path):
    full, m_full = make(tmp_path / "a")
    assert full.run().status == "done"
    ref = snapshot(full, m_full)

    part, _ = make(tmp_path / "b", steps=5)
    assert part.run().step == 5
    # A new process: fresh modules, a different global RNG state; everything comes from the checkpoint.
    torch.manual_seed(123)
    resumed, m_res = make(tmp_path / "b", steps=8)
    assert resumed.resume()
    assert resumed.step == 5
    assert resumed.run().status == "done"
    assert_same(snapshot(resumed, m_res), ref)
    # The EMA really averages (differs from the weights) and frozen weights never moved.
    assert not torch.equal(resumed.ema["toy"]["a.weight"], m_res.a.weight)
    assert "frozen.weight" not in resumed.ema["toy"]


def test_interrupt_by_signal_flag_then_resume_is_exact(tmp_path):
    ref_trainer, ref_model = make(tmp_path / "ref")
    ref_trainer.run()
    trainer, model = make(tmp_path / "run")
    original = trainer.loss_fn

    def stop_after_two(batch, generator):
        if trainer.step == 2:
            trainer._stop_requested = True  # what the SIGINT / SIGTERM handler sets
        return original(batch, generator)

    trainer.loss_fn = stop_after_two
    result = trainer.run()
    assert result.status == "interrupted" and result.step == 3
    resumed, m2 = make(tmp_path / "run")
    resumed.resume()
    resumed.run()
    assert_same(snapshot(resumed, m2), snapshot(ref_trainer, ref_model))


def test_max_minutes_pauses_with_a_checkpoint(tmp_path):
    trainer, _ = make(tmp_path)
    result = trainer.run(max_minutes=0)
    assert result.status == "paused" and result.step == 0
    assert (tmp_path / CHECKPOINT_NAME).exists()


def test_minutes_budget_ends_the_run(tmp_path):
    trainer, _ = make(tmp_path, steps=0, minutes=1e-6)
    result = trainer.run()
    assert result.status == "done" and result.step == 1


def test_plain_iterable_batches_resume_by_replay(tmp_path):
    class Replay:
        def __iter__(self):
            step = 0
            while True:
                yield Batches().batch(step)
                step += 1

    full, m_full = make(tmp_path / "a", batches=Replay())
    full.run()
    part, _ = make(tmp_path / "b", steps=4, batches=Replay())
    part.run()
    resumed, m_res = make(tmp_path / "b", batches=Replay())
    resumed.resume()
    resumed.run()
    assert_same(snapshot(resumed, m_res), snapshot(full, m_full))


def test_resume_with_other_settings_names_both_configs(tmp_path):
    trainer, _ = make(tmp_path, steps=2)
    trainer.run()
    other, _ = make(tmp_path, steps=4, run_info={"m": 2})
    with pytest.raises(InputError) as e:
        other.resume()
    msg = str(e.value)
    assert "checkpoint config" in msg and "this run's config" in msg and "m: checkpoint 1, now 2" in msg
    lr, _ = make(tmp_path, steps=4, lr=5e-3)
    with pytest.raises(InputError, match="lr: checkpoint 0.01, now 0.005"):
        lr.resume()
    # Budgets may change between a run and its resume.
    longer, _ = make(tmp_path, steps=5, log_every=1)
    assert longer.resume() and longer.run().step == 5


def test_checkpoint_from_before_a_setting_existed_resumes_at_its_old_value(tmp_path):
    old, _ = make(tmp_path, steps=2, run_info={"m": 1, "recipe": {"a": 1}})
    old.run()

    def later(run_info, added_later):
        return make(tmp_path, steps=4, run_info=run_info, added_later=added_later)[0]

    # The new setting at the value the old run trained with: resumes.
    same = later({"m": 1, "recipe": {"a": 1, "w": 1.0}}, {"recipe": {"w": 1.0}})
    assert same.resume() and same.step == 2
    # At another value: refused, naming the setting and the old value it stands for.
    other = later({"m": 1, "recipe": {"a": 1, "w": 30.0}}, {"recipe": {"w": 1.0}})
    with pytest.raises(InputError, match="recipe.w: checkpoint 1.0, now 30.0"):
        other.resume()
    # Without the declaration, a missing setting is a difference like any other.
    undeclared = later({"m": 1, "recipe": {"a": 1, "w": 1.0}}, {})
    with pytest.raises(InputError, match="recipe.w: checkpoint '<absent>', now 1.0"):
        undeclared.resume()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    trainer, _ = make(tmp_path, steps=3)
    trainer.run()
    before = (tmp_path / CHECKPOINT_NAME).read_bytes()
    again, _ = make(tmp_path, steps=6)
    again.resume()

    def killed_mid_write(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt  # the process dies while writing

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        again.save_checkpoint()
    assert (tmp_path / CHECKPOINT_NAME).read_bytes() == before
    monkeypatch.undo()
    third, _ = make(tmp_path, steps=6)
    assert third.resume() and third.step == 3


def test_non_finite_loss_stops_with_advice(tmp_path):
    model = nn.Linear(2, 1)

    def loss_fn(batch, generator):
        return model(torch.ones(1, 2)).sum() * float("nan"), {}

    trainer = Trainer({"m": model}, model.parameters(), loss_fn, Batches(), TrainConfig(steps=3), tmp_path, log=None)
    with pytest.raises(TrainingDiverged, match="learning rate"):
        trainer.run()


def test_budget_and_settings_are_validated():
    with pytest.raises(InputError, match="budget"):
        TrainConfig()
    with pytest.raises(InputError, match="lr"):
        TrainConfig(steps=1, lr=0)


def test_log_and_export(tmp_path):
    trainer, model = make(tmp_path, steps=4)
    result = trainer.run()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert {"loss", "noise", "grad_norm", "lr", "s_per_step", "minutes"} <= set(records[0])
    path = trainer.export(tmp_path / "toy.safetensors", "toy", "toy", {"width": 16}, extra={"note": "x"})
    state, config = load_safetensors(path, "toy")
    assert config == {"width": 16}
    assert state["a.weight"].dtype == torch.float16
    assert torch.equal(state["a.weight"], trainer.ema["toy"]["a.weight"].half())
    assert torch.equal(state["frozen.weight"], model.frozen.weight.half())  # untrained: exported as is
    assert result.final_loss is not None


def test_gradient_norm_is_clipped(tmp_path):
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    seen = {}

    def loss_fn(batch, generator):
        return (model(torch.ones(1, 3)) - 1000.0).pow(2).sum(), {}

    def spy(*a, **k):
        seen["grad"] = model.weight.grad.norm().item()
        return real_step(*a, **k)

    trainer = Trainer({"m": model}, model.parameters(), loss_fn, Batches(), TrainConfig(steps=1, grad_clip=1.0),
                      tmp_path, log=None)
    real_step = trainer.optimizer.step
    trainer.optimizer.step = spy
    stats = trainer.train_step()
    assert stats["grad_norm"] > 1000 and seen["grad"] == pytest.approx(1.0, rel=1e-4)


def test_fast_precision_follows_the_hardware(monkeypatch):
    import torch

    from omnihuman_core.train.loop import fast_precision

    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert fast_precision("cpu") == "float32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert fast_precision("cpu") == "bfloat16"
    assert fast_precision("meta") == "float32"


def test_cooldown_decays_the_rate_to_zero_at_the_end_and_can_be_added_when_continuing(tmp_path):
    trainer, model = make(tmp_path / "a", steps=10, warmup=0, cooldown=0.5, log_every=1)
    trainer.run()
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    # Steps 0-5 at the full rate, then linearly down: the step taken at 90 % of the run gets a fifth of it.
    assert lrs == pytest.approx([1e-2] * 6 + [8e-3, 6e-3, 4e-3, 2e-3])
    ref = snapshot(trainer, model)

    # Warm-up / stable / decay: a finished constant-rate run continued into its cooldown is the same run.
    stable, _ = make(tmp_path / "b", steps=5, warmup=0)
    stable.run()
    cooled, m = make(tmp_path / "b", steps=10, warmup=0, cooldown=0.5, log_every=1)
    assert cooled.resume()
    cooled.run()
    assert_same(snapshot(cooled, m), ref)

    with pytest.raises(InputError, match="cooldown"):
        TrainConfig(steps=1, cooldown=1.0)


def test_cooldown_follows_a_minutes_budget():
    config = TrainConfig(minutes=10, cooldown=0.2)
    trainer = Trainer.__new__(Trainer)
    trainer.config, trainer.step, trainer.elapsed = config, 3, 9 * 60.0
    assert trainer._run_progress() == pytest.approx(0.9)
    trainer.progress = trainer._run_progress()
    assert trainer._lr(3) == pytest.approx(config.lr * 0.5)
