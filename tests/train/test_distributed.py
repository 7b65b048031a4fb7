"""torchrun with two real gloo processes on the CPU: DDP and FSDP training, resume, rank-0 writes, the CLI."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")

WORKER = textwrap.dedent('''
    import sys
    import torch
    from torch import nn
    from omnihuman_core.train import distributed as D
    from omnihuman_core.train.loop import TrainConfig, Trainer

    out = sys.argv[1]
    torch.set_num_threads(1)
    info = D.setup("cpu")


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(8, 8) for _ in range(2)])
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            for b in self.blocks:
                x = torch.tanh(b(x))
            return self.head(x)


    class Shards:
        """Each rank gets its own data, as the real batch sources do."""

        def __init__(self, rank):
            self.rank = rank

        def batch(self, step):
            g = torch.Generator().manual_seed(10_000 * self.rank + step)
            return torch.randn(4, 8, generator=g)


    def build(work, steps, mode):
        torch.manual_seed(info.rank)  # different on purpose: the Trainer / DDP must give every rank rank 0's init
        net = Net()
        side = nn.Linear(8, 8)  # trained but unwrapped (like the text encoder): gradients averaged by the Trainer
        wrapped = D.wrap(net, info, fsdp=(mode == "fsdp"))
        params = list(net.parameters()) + list(side.parameters())  # after wrapping: FSDP replaces parameters

        def loss_fn(x, generator):
            noise = torch.randn(x.shape, generator=generator) * 0.1
            return wrapped(side(x + noise)).pow(2).mean(), {}

        config = TrainConfig(lr=1e-2, steps=steps, ema_decay=0.8, log_every=1, ckpt_every=100)
        trainer = Trainer({"net": wrapped, "side": side}, params, loss_fn, Shards(info.rank), config, work,
                          run_info={"toy": 1}, dist=info, log=None)
        return trainer


    for mode in ("ddp", "fsdp"):  # one launch for both: starting two processes costs more than the training
        full = build(f"{out}/{mode}/full", 4, mode)
        full.run()
        part = build(f"{out}/{mode}/part", 2, mode)
        part.run()
        resumed = build(f"{out}/{mode}/part", 4, mode)
        assert resumed.resume()
        resumed.run()
        result = {}
        for name, t in (("full", full), ("resumed", resumed)):
            for module in ("net", "side"):
                result[f"{name}.{module}"] = t.ema_state_dict(module)  # EMA, full tensors (a collective)
                result[f"{name}.{module}.live"] = t._module_state(module)
        torch.save(result, f"{out}/{mode}/rank{info.rank}.pt")
    D.cleanup(info)
''')


def torchrun(args, tmp_path, timeout=240):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    script = tmp / "worker.py"
    script.write_text(WORKER)
    torchrun([str(script), str(tmp)], tmp)
    return tmp


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_processes_end_identical_and_resume_exactly(toy_runs, mode):
    tmp_path = toy_runs / mode
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key in r0:
        for name, t in r0[key].items():
            assert torch.equal(t, r1[key][name]), (key, name)  # both ranks hold the same model
    for module in ("net", "side"):
        for suffix in ("", ".live"):
            for name, t in r0[f"full.{module}{suffix}"].items():
                assert torch.equal(t, r0[f"resumed.{module}{suffix}"][name]), (module, suffix, name)
    # Only rank 0 wrote: one log line per step, one checkpoint.
    lines = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["checkpoint.pt", "log.jsonl"]


@pytest.mark.slow
def test_train_mmdit_command_under_torchrun(tmp_path):
    """The real objective under DDP: the MMDiT wrapped, the jointly trained text encoder averaged by hand."""
    from omnihuman_core.cli import main
    from omnihuman_core.synth import write_dataset
    from omnihuman_core.weights import read_metadata

    write_dataset(tmp_path / "data", 2, seed=1, size=32, frames=29, test_fraction=0.0, speech="babble")
    assert main(["init", "--kind", "vae", "--preset", "tiny", "--out", str(tmp_path / "vae.safetensors")]) == 0
    out = tmp_path / "base.safetensors"
    torchrun(["-m", "omnihuman_core", "train", "mmdit", "--stage", "base", "--data", str(tmp_path / "data"),
              "--vae", str(tmp_path / "vae.safetensors"), "--out", str(out), "--work", str(tmp_path / "work"),
              "--preset", "tiny", "--frames", "9", "--windows-per-clip", "2", "--steps", "2", "--batch-size", "2",
              "--device", "cpu"], tmp_path)
    assert json.loads(read_metadata(out)["training"])["steps"] == 2
    assert (tmp_path / "text_encoder.safetensors").exists()
    run = torch.load(tmp_path / "work" / "checkpoint.pt", weights_only=True)
    assert json.loads(run["run_info"])["world"] == 2
