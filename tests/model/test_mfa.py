"""MFA (Eq. 4): the default cannot be satisfied by constant embeddings; the literal form can."""

from __future__ import annotations

import pytest
import torch

from irralctl.model.mfa import MFALoss


def _train_constant_image(mode: str, steps: int = 400) -> tuple[float, float]:
    """Fit a constant image embedding (the same for every study) to varied report embeddings.

    Returns (lowest loss, mean loss of the last 100 steps). A loss that falls this way rewards collapse.
    """
    torch.manual_seed(0)
    d = 16
    loss_fn = MFALoss(d, mode, margin=0.5)
    const_img = torch.nn.Parameter(torch.randn(d))
    const_txt = torch.nn.Parameter(torch.randn(d))   # used by the literal mode: both sides trained
    opt = torch.optim.Adam([const_img, const_txt], lr=0.05)
    texts = torch.randn(64, d) + 3.0   # a shared offset, as real sentence embeddings have
    losses = []
    for step in range(steps):
        idx = torch.randint(0, 64, (8,))
        z_img = const_img.expand(8, d)
        z_txt = const_txt.expand(8, d) if mode == "literal" else texts[idx]
        loss = loss_fn(z_img, z_txt).mean()
        opt.zero_grad()
        if loss.requires_grad:
            loss.backward()
            opt.step()
        losses.append(float(loss.detach()))
    return min(losses), sum(losses[-100:]) / 100


def test_default_mfa_cannot_reach_zero_with_constant_embeddings():
    lowest, final = _train_constant_image("centered")
    # A constant image embedding is centred to (nearly) zero: the hinge stays around its margin,
    # only batch-to-batch noise moves it (a moving constant leaves its drift after centring).
    assert final == pytest.approx(0.5, abs=0.05)
    assert lowest > 0.25


def test_literal_mfa_is_satisfied_by_constants():
    # Eq. 4 as printed: matched pairs only, both sides trained: two constants satisfy it.
    lowest, final = _train_constant_image("literal")
    assert lowest == final == 0.0


def test_centered_mfa_falls_only_by_telling_reports_apart():
    torch.manual_seed(1)
    d, n = 16, 64
    texts = torch.randn(n, d) + 3.0                     # a shared offset, as real sentence embeddings have
    loss_fn = MFALoss(d, "centered", margin=0.5)
    proj = torch.nn.Linear(d, d)                        # the image side learns a map of per-study inputs
    inputs = texts @ torch.randn(d, d) * 0.1 + torch.randn(n, d) * 0.05
    opt = torch.optim.Adam(proj.parameters(), lr=0.01)
    for _ in range(300):
        idx = torch.randint(0, n, (16,))
        loss = loss_fn(proj(inputs[idx]), texts[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    loss_fn.eval()
    with torch.no_grad():
        sim = loss_fn.similarity(proj(inputs), texts)
        final = float(loss_fn(proj(inputs), texts).mean())
    matched = sim.diagonal().mean()
    mismatched = (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))
    assert matched > 0.5 > mismatched + 0.3
    assert final < 0.2


def test_infonce_prefers_matched_pairs():
    loss_fn = MFALoss(4, "infonce", temperature=0.1)
    z = torch.eye(4)
    assert float(loss_fn(z, z).mean()) < float(loss_fn(z, z.roll(1, dims=0)).mean())
    with pytest.raises(ValueError):
        MFALoss(4, "nope")


def test_running_means_are_checkpointed_buffers():
    loss_fn = MFALoss(4)
    loss_fn(torch.randn(3, 4), torch.randn(3, 4))
    state = loss_fn.state_dict()
    assert set(state) == {"mean_img", "mean_txt", "seen"} and int(state["seen"]) == 1
    other = MFALoss(4)
    other.load_state_dict(state)
    torch.testing.assert_close(other.mean_img, loss_fn.mean_img)
