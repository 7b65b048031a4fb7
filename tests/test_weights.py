"""Weight files: safetensors only, config in metadata, strict key/shape checks, never unpickle."""

import pickle

import pytest
import torch

from omnihuman_core.errors import WeightsError
from omnihuman_core.weights import file_fingerprint, load_into, load_safetensors, read_metadata, save_safetensors


def _net():
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))


def test_round_trip_keeps_config_kind_and_values(tmp_path):
    net = _net()
    path = save_safetensors(tmp_path / "m.safetensors", net.state_dict(), "mmdit", {"hidden": 8}, {"data": "synth"})
    state, config = load_safetensors(path, "mmdit")
    assert config == {"hidden": 8}
    assert read_metadata(path)["data"] == "synth"
    other = _net()
    load_into(other, state, path)
    for a, b in zip(net.parameters(), other.parameters()):
        assert torch.equal(a, b)


def test_dtype_converted_on_load(tmp_path):
    net = _net()
    path = save_safetensors(tmp_path / "m.safetensors", net.state_dict(), "mmdit", {})
    half = _net().to(torch.bfloat16)
    load_into(half, load_safetensors(path)[0], path)
    assert half[0].weight.dtype == torch.bfloat16
    assert torch.allclose(half[0].weight.float(), net[0].weight, atol=1e-2)


def test_wrong_kind_is_named(tmp_path):
    path = save_safetensors(tmp_path / "v.safetensors", _net().state_dict(), "vae", {})
    with pytest.raises(WeightsError, match="holds a 'vae' model, but a 'mmdit'"):
        load_safetensors(path, "mmdit")


def test_missing_unexpected_and_mismatched_keys_are_named(tmp_path):
    state = _net().state_dict()
    state["extra.weight"] = torch.zeros(1)
    del state["1.bias"]
    state["0.weight"] = torch.zeros(3, 3)
    with pytest.raises(WeightsError) as e:
        load_into(_net(), state, "w.safetensors")
    msg = str(e.value)
    assert "0.weight: file (3, 3) vs model (8, 4)" in msg and "missing: 1.bias" in msg and "unexpected: extra.weight" in msg


def test_pickle_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    pkl = tmp_path / "evil.pt"
    pkl.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(WeightsError, match="never unpickles"):
        load_safetensors(pkl)
    zipped = tmp_path / "ckpt.pt"
    torch.save({"a": torch.zeros(1)}, zipped)
    with pytest.raises(WeightsError, match="pickle"):
        load_safetensors(zipped)


def test_truncated_corrupt_empty_and_missing(tmp_path):
    path = save_safetensors(tmp_path / "m.safetensors", _net().state_dict(), "mmdit", {})
    data = path.read_bytes()
    truncated = tmp_path / "t.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_safetensors(truncated)
    garbage = tmp_path / "g.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WeightsError):
        load_safetensors(garbage)
    empty = tmp_path / "e.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty or truncated"):
        load_safetensors(empty)
    with pytest.raises(WeightsError, match="does not exist"):
        load_safetensors(tmp_path / "nope.safetensors")


def test_fingerprint_changes_with_content(tmp_path):
    a = save_safetensors(tmp_path / "a.safetensors", _net().state_dict(), "mmdit", {"x": 1})
    b = save_safetensors(tmp_path / "b.safetensors", _net().state_dict(), "mmdit", {"x": 2})
    assert file_fingerprint(a) != file_fingerprint(b)
    assert file_fingerprint(a) == file_fingerprint(a)


def test_fingerprint_sees_changed_values_with_same_shapes(tmp_path):
    net = _net()
    a = save_safetensors(tmp_path / "a.safetensors", net.state_dict(), "mmdit", {})
    with torch.no_grad():
        net[0].weight.add_(1)
    b = save_safetensors(tmp_path / "b.safetensors", net.state_dict(), "mmdit", {})
    assert file_fingerprint(a) != file_fingerprint(b)


def test_same_weights_and_metadata_give_the_same_bytes(tmp_path):
    # safetensors orders metadata by its hash map, which differs per call; a re-export of the same checkpoint
    # must keep its fingerprint, or the next training stage that recorded it refuses to resume.
    # Mixed dtypes: the writer orders the data by alignment, so sorted names no longer follow the offsets.
    state = {**_net().state_dict(), "a_half": torch.ones(3, dtype=torch.float16), "steps": torch.arange(2)}
    extra = {f"key{i}": f"value {i}" for i in range(12)}
    paths = [save_safetensors(tmp_path / f"{i}.safetensors", state, "mmdit", {"hidden": 8},
                              dict(reversed(extra.items())) if i % 2 else extra) for i in range(6)]
    blobs = {p.read_bytes() for p in paths}
    assert len(blobs) == 1
    assert len({file_fingerprint(p) for p in paths}) == 1
    loaded, config = load_safetensors(paths[0], "mmdit")
    assert config == {"hidden": 8} and read_metadata(paths[0])["key3"] == "value 3"
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
