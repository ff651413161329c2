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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_all_finite_finds_every_nan_and_infinity(dtype):
    t = torch.randn(1000, dtype=torch.float32).to(dtype)
    assert ck.all_finite(t) and ck.all_finite(t[::3]) and ck.all_finite(torch.zeros(0, dtype=dtype))
    for bad in (float("nan"), float("inf"), float("-inf")):
        u = t.clone()
        u[517] = bad
        assert not ck.all_finite(u)
    big = torch.full((10,), torch.finfo(dtype).max, dtype=dtype)  # finite, though their sum overflows float64 for float64
    assert ck.all_finite(big)


def test_verifying_the_inference_part_hashes_nothing_of_the_training_state(tmp_path, monkeypatch):
    """`generate` reads the weights, not the optimiser state (twice their size): verifying must not read it."""
    ck.save_checkpoint(tmp_path / "x.pt", _payload())
    fed = []
    real = ck._feed
    monkeypatch.setattr(ck, "_feed", lambda h, obj: (fed.append(obj), real(h, obj)))
    ck.load_checkpoint(tmp_path / "x.pt", mmap=True, verify="inference")
    assert fed and not any(isinstance(o, dict) and "state" in o for o in fed)


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


def test_a_model_opened_from_a_checkpoint_equals_the_saved_one(tmp_path):
    """Built without initial weights and given the file's tensors: every parameter and buffer (the
    positional tables, which are not saved, included) equals the model that was saved, and so do
    its outputs."""
    from irralctl.model import IRRALNet, ModelConfig
    from irralctl.runs.loaded import model_from_checkpoint
    from irralctl.utils.config import to_jsonable

    cfg = ModelConfig(vocab_size=40, backbone="tiny", tiny_width=8, image_size=64, d_model=32, n_heads=4, d_ff=32,
                      enc_layers=2, dec_layers=2, memory_slots=48, memory_topk=6, text_dim=24, dropout=0.0)
    saved = IRRALNet(cfg, seed=3).eval()
    ck.save_checkpoint(tmp_path / "m.pt", {"model_config": to_jsonable(cfg), "model": saved.state_dict()})
    opened = model_from_checkpoint(ck.load_checkpoint(tmp_path / "m.pt", mmap=True)).eval()
    mine, theirs = dict(opened.named_parameters()), dict(saved.named_parameters())
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    mine, theirs = dict(opened.named_buffers()), dict(saved.named_buffers())
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    images = torch.randint(0, 256, (2, 2, 64, 64), dtype=torch.uint8)
    views = torch.ones(2, 2, dtype=torch.bool)
    with torch.no_grad():
        assert torch.equal(opened.encode(images, views).memory, saved.encode(images, views).memory)
    # Nothing was left to the skipped initialisation: building again afterwards draws weights as before.
    assert torch.equal(IRRALNet(cfg, seed=3).lm_head.weight, saved.lm_head.weight)


def test_verifying_in_the_background_raises_at_ready(tmp_path):
    """`load_run(..., verify_in_background=True)` (what `generate` does) hands the run back at once and
    raises the checkpoint's problem at `ready()`, before anything the model computes is kept."""
    from irralctl.data.tokenizers import BPETokenizer
    from irralctl.model import IRRALNet, ModelConfig
    from irralctl.runs.loaded import load_run
    from irralctl.utils.config import to_jsonable

    tok = BPETokenizer.fit(["the heart is normal .", "no pleural effusion .", "the lungs are clear ."] * 5, 60)
    cfg = ModelConfig(vocab_size=tok.vocab_size, pad_id=tok.pad_id, bos_id=tok.bos_id, eos_id=tok.eos_id,
                      backbone="tiny", tiny_width=8, image_size=64, d_model=32, n_heads=4, d_ff=32, enc_layers=1,
                      dec_layers=1, memory_slots=16, memory_topk=4, text_dim=24, dropout=0.0)
    payload = {"model_config": to_jsonable(cfg), "model": IRRALNet(cfg).state_dict(), "inference": {"max_tokens": 10},
               "cleaner": None, "dataset": None, "tokenizer": {"kind": "bpe", "json": tok.to_json(), "text_field": "target"}}
    ck.save_checkpoint(tmp_path / "ok.pt", payload)
    ck.save_checkpoint(tmp_path / "bad.pt", payload)
    _tamper(tmp_path / "bad.pt", lambda p: p["model"]["lm_head.bias"].add_(1.0))
    load_run(tmp_path / "ok.pt", "cpu", verify_in_background=True).ready()
    run = load_run(tmp_path / "bad.pt", "cpu", verify_in_background=True)
    with pytest.raises(InputError, match="content hash of its inference part"):
        run.ready()
    with pytest.raises(InputError, match="content hash of its inference part"):
        load_run(tmp_path / "bad.pt", "cpu")  # the default: verified before it returns
