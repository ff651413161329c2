"""Initial weights: seeded per module, so presets compared at one seed share every common weight."""

from __future__ import annotations

import pytest
import torch

from irralctl.model import PRESETS, apply_preset, build_model
from tests.model.test_model import tiny


def _weights(preset: str, seed: int = 7) -> dict[str, torch.Tensor]:
    torch.manual_seed(1234)  # the global generator must not matter
    return build_model(tiny(**apply_preset(preset)), seed=seed).state_dict()


@pytest.mark.parametrize("other", sorted(set(PRESETS) - {"baseline"}))
def test_presets_share_every_common_initial_weight(other):
    base, full = _weights("baseline"), _weights(other)
    shared = [k for k in base if k in full and base[k].shape == full[k].shape]
    assert len(shared) > 20
    different = [k for k in shared if not torch.equal(base[k], full[k])]
    assert different == []


def test_initial_weights_depend_on_seed_not_on_global_state():
    a, b = _weights("irral", seed=1), _weights("irral", seed=1)
    torch.manual_seed(99)
    c = build_model(tiny(**apply_preset("irral")), seed=1).state_dict()
    d = _weights("irral", seed=2)
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], d["lm_head.weight"])
    # Different modules get different draws (a generator per module name, not one reused).
    assert not torch.equal(a["encoder_layers.0.attn.q_proj.weight"][:8], a["encoder_layers.1.attn.q_proj.weight"][:8])


def test_every_parameter_is_initialised_finite():
    for preset in PRESETS:
        for name, p in build_model(tiny(**apply_preset(preset)), seed=0).named_parameters():
            assert torch.isfinite(p).all(), name
