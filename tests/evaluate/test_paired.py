"""`evaluate table --against`: clip-by-clip differences with a bootstrap interval, on hand-made results files."""

import json

import numpy as np
import pytest

from omnihuman_core.cli import main
from omnihuman_core.errors import InputError
from omnihuman_core.evaluate.metrics import paired_bootstrap
from omnihuman_core.evaluate.run import RESULTS_FORMAT, paired_table


def _results(path, label, lip, hkv, identity, correct, total=5):
    clips = [{"id": f"clip_{i:03d}", "model": {"lip_sync": l, "hkv": h, "identity": d, "action_correct": c,
                                                "action_total": total}}
             for i, (l, h, d, c) in enumerate(zip(lip, hkv, identity, correct))]
    summary = {"model": {"clips": len(clips), "lip_sync": float(np.mean([x for x in lip if x is not None]))},
               "gt": {"clips": len(clips), "lip_sync": 0.99, "lip_sync_offset": 0, "identity": 0.9,
                      "action_accuracy": 0.9, "hkv": 60.0}, "ratio": {}}
    path.write_text(json.dumps({"format": RESULTS_FORMAT, "version": 1, "kind": "run", "label": label,
                                "settings": {}, "summary": summary, "clips": clips}))
    return path


def test_bootstrap_interval_brackets_a_clear_shift_and_straddles_noise():
    rng = np.random.default_rng(1)
    shifted = 0.2 + 0.02 * rng.standard_normal(16)
    mean, lo, hi = paired_bootstrap(shifted)
    assert lo < mean < hi and lo > 0.15 and hi < 0.25
    mean, lo, hi = paired_bootstrap(rng.standard_normal(16))
    assert lo < 0 < hi
    # Pooled ratio: 4 more correct spans of 20 is +0.2 whatever the clip split.
    assert paired_bootstrap(np.array([1, 1, 2, 0]), np.array([5, 5, 5, 5]))[0] == pytest.approx(0.2)
    with pytest.raises(InputError):
        paired_bootstrap(np.array([]))


def test_rows_lead_trail_or_tie_against_the_named_row(tmp_path, capsys):
    n = 12
    rng = np.random.default_rng(0)
    lip = list(0.6 + 0.05 * rng.standard_normal(n))
    lip[3] = None  # a silent clip: no lip sync, still paired on the rest
    hkv = list(30 + 3 * rng.standard_normal(n))
    ident = list(0.8 + 0.02 * rng.standard_normal(n))
    full = _results(tmp_path / "full.json", "full", lip, hkv, ident, [1] * n)
    worse = _results(tmp_path / "worse.json", "worse", [None if x is None else x - 0.1 for x in lip],
                     [x - 5 for x in hkv], ident, [1] * n)
    mixed = _results(tmp_path / "mixed.json", "mixed", [None if x is None else x + 0.1 for x in lip],
                     [x - 5 for x in hkv], [x + 0.05 for x in ident], [2] * n)
    same = _results(tmp_path / "same.json", "same", [None if x is None else x + (0.03 if i % 2 else -0.02)
                                                     for i, x in enumerate(lip)], hkv, ident, [1] * n)
    table = paired_table([full, worse, mixed, same], "full")
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ") and "clips" not in line}
    assert rows["worse"].endswith("| yes |") and "-0.100 [-0.100, -0.100]" in rows["worse"]
    assert "no: this row leads on lip sync, trails on HKV" in rows["mixed"]
    assert "+0.20 [+0.20, +0.20]" in rows["mixed"]  # actions: one more correct span of 5 per clip
    assert "ties on lip sync, ties on HKV" in rows["same"]
    assert "| full |" not in table and "| 12 |" in rows["same"]

    # The CLI prints the plain table and the paired one; a wrong label is refused before anything is written.
    out = tmp_path / "table.md"
    assert main(["evaluate", "table", str(full), str(worse), "--against", "full", "--out-md", str(out)]) == 0
    assert "Paired against `full`" in out.read_text() and "| worse |" in capsys.readouterr().out
    out.unlink()
    assert main(["evaluate", "table", str(full), str(worse), "--against", "ful", "--out-md", str(out)]) == 2
    assert "rows: full, worse" in capsys.readouterr().err and not out.exists()
    with pytest.raises(InputError, match="names no row"):
        paired_table([worse], "full")
    # Two runs under one label: one would silently replace the other.
    twin = _results(tmp_path / "twin.json", "worse", lip, hkv, ident, [1] * n)
    with pytest.raises(InputError, match="both `evaluate run` results labelled 'worse'"):
        paired_table([full, worse, twin], "full")
    assert main(["evaluate", "table", str(full), str(worse), str(twin)]) == 2
    assert "another --label" in capsys.readouterr().err
