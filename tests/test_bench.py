"""bench: a quick smoke run of `run_bench` prints the table rows (no timing assertions: CI machines are noisy)."""

import argparse

from omnihuman_core.bench import BENCHMARKS, add_bench_parser, format_table, run_bench


def _args(argv):
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def test_parser_defaults():
    args = _args([])
    assert args.rounds == 15 and args.only is None and not args.quick and args.gpu_tflops == 989.0
    assert set(BENCHMARKS) == {"block", "matmul", "audio", "pseudo", "chain", "base", "render"}


def test_quick_base_and_pseudo_print_their_rows(capsys):
    assert run_bench(_args(["--quick", "--only", "base,pseudo", "--rounds", "2"])) == 0
    out = capsys.readouterr().out
    assert "benchmark" in out and "result" in out  # the table header
    for row in ("pseudo ", "base.params", "base.tokens", "base.flops", "base.gpu",
                "base.check.branch", "base.check.cross_attention"):
        assert row in out, row
    assert "parameters:" in out and "PFLOP" in out  # format_report of the base preset
    assert "block " not in out and "matmul " not in out  # --only is honoured
    assert any(s in out for s in ("PASS", "MISS"))


def test_unknown_benchmark_is_an_input_error():
    import pytest

    from omnihuman_core.errors import InputError

    with pytest.raises(InputError, match="unknown benchmark"):
        run_bench(_args(["--only", "nope"]))


def test_format_table_marks_skips():
    from omnihuman_core.bench import Row

    table = format_table([Row("block", "ratio", None, "<= 1.00", None, "SKIP: diffusers missing")])
    assert "SKIP" in table


def test_render_reports_skip_without_models(tmp_path, capsys):
    # No model files: a SKIP row naming them, not a crash (the shipped demo models may be absent in a checkout).
    assert run_bench(_args(["--only", "render", "--models", str(tmp_path)])) == 0
    out = capsys.readouterr().out
    assert "SKIP" in out and "mmdit.safetensors" in out
