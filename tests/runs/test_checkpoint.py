"""Checkpoints: saved with content hashes, verified on every load, every damaged file named; and the
one device and precision policy."""

from __future__ import annotations

import errno
import io
import zipfile

import pytest
import torch

from irralctl.errors import ConfigError, InputError, IrralError
from irralctl.runs import checkpoint as ck
from irralctl.runs.device import amp_dtype, precision_name, resolve_device
from irralctl.runs.layout import checkpoint_file


def _payload() -> dict:
    g = torch.Generator().manual_seed(0)
    return {
        "model_config": {"vocab_size": 10}, "model": {"w": torch.randn(4, 3, generator=g), "b": torch.zeros(3)},
        "tokenizer": {"kind": "bpe", "json": "{}", "text_field": "target"}, "inference": {"max_tokens": 60},
        "cleaner": None, "dataset": None, "optimizer": {"state": {0: {"exp_avg": torch.ones(4, 3)}}}, "epoch": 1,
    }


def test_saved_checkpoints_load_and_verify(tmp_path):
    ck.save_checkpoint(tmp_path / "last.pt", _payload())
    loaded = ck.load_checkpoint(tmp_path / "last.pt", verify="all")
    assert torch.equal(loaded["model"]["w"], _payload()["model"]["w"]) and loaded["format_version"] == ck.FORMAT_VERSION
    assert set(loaded["sha256"]) == {"inference", "training"}
    assert ck.load_checkpoint(tmp_path / "last.pt", mmap=True)["epoch"] == 1


def _tamper(path, change):
    """Rewrite a checkpoint with `change` applied to its payload, keeping its stored hashes."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("part, change", [
    ("inference", lambda p: p["model"]["w"].view(-1)[5].add_(1e-7)),    # one weight moved: a flipped bit
    ("inference", lambda p: p["tokenizer"].update(json='{"other": 1}')),
    ("training", lambda p: p["optimizer"]["state"][0]["exp_avg"].mul_(2)),
])
def test_a_changed_checkpoint_is_refused(tmp_path, part, change):
    ck.save_checkpoint(tmp_path / "x.pt", _payload())
    _tamper(tmp_path / "x.pt", change)
    with pytest.raises(InputError, match=f"content hash of its {part} part does not match") as info:
        ck.load_checkpoint(tmp_path / "x.pt", verify="all")
    assert str(tmp_path / "x.pt") in info.value.message
    if part == "training":  # generation reads only the inference part
        assert ck.load_checkpoint(tmp_path / "x.pt", verify="inference")["epoch"] == 1


def test_a_flipped_bit_in_the_file_is_refused(tmp_path):
    ck.save_checkpoint(tmp_path / "x.pt", _payload())
    data = bytearray((tmp_path / "x.pt").read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/data/0"))  # a tensor's bytes
    name_len = int.from_bytes(data[info.header_offset + 26: info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28: info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_len + extra_len + 1] ^= 0x10   # inside the stored tensor
    (tmp_path / "x.pt").write_bytes(bytes(data))
    with pytest.raises(InputError, match="damaged checkpoint"):
        ck.load_checkpoint(tmp_path / "x.pt", verify="all")


def test_non_finite_weights_are_refused(tmp_path):
    payload = _payload()
    payload["model"]["w"][0, 0] = float("nan")
    ck.save_checkpoint(tmp_path / "nan.pt", payload)
    with pytest.raises(InputError, match="weights w hold NaN or infinite values"):
        ck.load_checkpoint(tmp_path / "nan.pt")


def test_files_that_are_not_checkpoints_are_named(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        ck.load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(InputError, match="not a PyTorch checkpoint"):
        ck.load_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="not an irralctl checkpoint"):
        ck.load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(InputError, match="is a directory"):
        ck.load_checkpoint(tmp_path)
    torch.save({"format": ck.FORMAT, "evil": ck.FORMAT_VERSION.__class__}, tmp_path / "pickled.pt")  # a class object
    with pytest.raises(InputError, match="refused without running them") as info:
        ck.load_checkpoint(tmp_path / "pickled.pt")
    assert "weights_only=False" not in info.value.message + (info.value.hint or "")
    data = (tmp_path / "foreign.pt").read_bytes()
    (tmp_path / "torn.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or damaged"):
        ck.load_checkpoint(tmp_path / "torn.pt")
    with pytest.raises(InputError, match="no checkpoint"):
        checkpoint_file(tmp_path)


def test_a_full_disk_keeps_the_previous_checkpoint_and_says_why(tmp_path, monkeypatch):
    ck.save_checkpoint(tmp_path / "last.pt", _payload())
    before = (tmp_path / "last.pt").read_bytes()

    real_save = torch.save

    def save(obj, f, *a, **kw):  # torch.save reports a failing write as a RuntimeError
        f.write(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck.torch, "save", save)
    with pytest.raises(IrralError, match="disk is full; the previous checkpoint is intact"):
        ck.save_checkpoint(tmp_path / "last.pt", _payload())
    monkeypatch.setattr(ck.torch, "save", real_save)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_device_and_precision_policy():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu and resolve_device("auto", 3).type in ("cpu", "cuda")
    assert amp_dtype("auto", cpu) is None and amp_dtype("fp32", cpu) is None
    assert amp_dtype("bf16", cpu) is torch.bfloat16 and amp_dtype("fp16", cpu) is torch.float16
    assert precision_name(None) == "fp32" and precision_name(torch.bfloat16) == "bf16"
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match="unknown precision"):
        amp_dtype("fp8", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")
