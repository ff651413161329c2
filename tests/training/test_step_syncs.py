"""No host synchronisation inside a training step.

On a GPU, every `.item()`, `.tolist()`, `.cpu()`, `bool(tensor)` ... of a device tensor makes the host
wait for the GPU: inside `train_step` one of them would stall every step (the loop reads the step's
statistics one step late instead, `train_one_epoch`). The step runs on the CPU here, with the
tensor methods that read values back to the host counted when irralctl's code calls them: it must
call none, on any tensor (the study rows it looks up by come as a list, read by `to_device` before
the step). PyTorch's own calls are not counted: on the CPU its for-loop AdamW reads its step
counters (CPU tensors by design); on CUDA the fused AdamW and the clipping read nothing back.
(fp16 training's GradScaler does read back whether gradients overflowed, once per step: bf16, the
CUDA default, needs no scaler.)
"""

from __future__ import annotations

import os
import sys
import traceback
from collections import Counter

import pytest
import torch

from irralctl.training.data import make_loader, to_device
from irralctl.training.distributed import DistState
from irralctl.training.loop import train_step
from irralctl.training.trainer import build_run, open_dataset
from tests.training.test_train import tiny_cfg

# Tensor methods that copy values to the host (a device sync on CUDA).
READ_BACK = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__", "__array__",
             "nonzero", "any_nonzero")

pytestmark = pytest.mark.usefixtures("one_thread")


class _Counted:
    def __init__(self, monkeypatch):
        self.calls: Counter = Counter()
        self.where: dict[str, str] = {}
        self.on = False
        for name in READ_BACK:
            real = getattr(torch.Tensor, name, None)
            if real is not None:
                monkeypatch.setattr(torch.Tensor, name, self._wrap(name, real))

    def _wrap(self, name, real):
        def counted(tensor, *args, **kwargs):
            if self.on and f"{os.sep}irralctl{os.sep}" in sys._getframe(1).f_code.co_filename:
                self.calls[name] += 1
                self.where.setdefault(name, "".join(traceback.format_stack(limit=4)[:-1]))
            return real(tensor, *args, **kwargs)
        return counted


# The irral cases load MFA's text encoder (transformers: a second to import), so they run in the full suite.
@pytest.mark.parametrize("preset, extra", [
    pytest.param("irral", {}, marks=pytest.mark.slow),  # ACL + MFA (frozen text encoder, cached features) + memory
    pytest.param("irral", {"context_from_labels": 0.5}, marks=pytest.mark.slow),  # the labels' clinical context
    ("baseline", {"grad_clip": 0.0}),                   # the norm computed without clipping
])
def test_a_training_step_reads_nothing_back_to_the_host(toy, tmp_path, monkeypatch, request, preset, extra):
    mfa = preset == "irral"
    text_encoder = str(request.getfixturevalue("tiny_bert")) if mfa else None
    cfg = tiny_cfg(toy, tmp_path / "run", preset=preset, mfa=mfa, text_encoder=text_encoder, **extra)
    dist, device = DistState(), torch.device("cpu")
    ds = open_dataset(cfg)
    run, _ = build_run(cfg, ds, dist, device)
    data = make_loader(ds, "train", ds.tokenizer("bpe"), cfg, dist, device, train=True, batch_size=8)
    batches = iter(data.loader)
    if run.text_cache is not None:  # steady state: every study's report features cached (after epoch 1)
        run.text_cache(torch.arange(len(run.train_ids)))
    run.module.train()
    train_step(run, to_device(next(batches), device))  # first step: lazy initialisation is not the step
    counted = _Counted(monkeypatch)
    batch = to_device(next(batches), device)
    counted.on = True
    stats = train_step(run, batch)
    counted.on = False
    assert not counted.calls, "host reads inside train_step: " + ", ".join(
        f"{name} x{n} at\n{counted.where[name]}" for name, n in counted.calls.items())
    assert stats.shape == (8,) and torch.isfinite(stats).all()


@pytest.mark.slow  # two trainings, one through Dynamo
def test_a_compiled_run_trains_validates_eagerly_and_saves_plain_names(toy, tmp_path, monkeypatch):
    """`--compile` end to end on the CPU (Dynamo's eager backend: the same regions, no code generation):
    same losses as an uncompiled run, checkpoint names without compile's wrapper."""
    import functools

    from irralctl.model.compile import compile_repeated_blocks
    from irralctl.plots.runs import read_steps
    from irralctl.runs.checkpoint import load_checkpoint
    from irralctl.training import train

    torch._dynamo.reset()
    monkeypatch.setattr("irralctl.training.trainer.compile_repeated_blocks",
                        functools.partial(compile_repeated_blocks, backend="eager"))
    train(tiny_cfg(toy, tmp_path / "compiled", epochs=1, compile=True))
    train(tiny_cfg(toy, tmp_path / "plain", epochs=1))
    compiled, plain = read_steps(tmp_path / "compiled" / "steps.csv"), read_steps(tmp_path / "plain" / "steps.csv")
    assert compiled["loss"] == pytest.approx(plain["loss"], rel=1e-5)
    weights = load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    assert not any("_orig_mod" in k for k in weights)
