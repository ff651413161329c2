"""The MFA text encoder: loading local Hugging Face models offline, freezing, the feature cache."""

from __future__ import annotations

import pytest
import torch

from irralctl.errors import InputError
from irralctl.model.text_encoder import TextEncoder, TextFeatureCache, default_text_encoder_path

pytestmark = pytest.mark.slow  # Hugging Face models: importing transformers alone takes a second


def test_local_model_loads_frozen_and_stays_in_eval(tiny_bert):
    enc = TextEncoder(tiny_bert, max_tokens=16)
    assert enc.hidden_size == 16 and not enc.trainable
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.bert.training  # a frozen encoder never enables dropout
    tuned = TextEncoder(tiny_bert, trainable=True)
    tuned.train()
    assert tuned.bert.training
    trainable = {n for n, p in tuned.named_parameters() if p.requires_grad}
    assert trainable and not any("pooler" in n for n in trainable)


def test_feature_cache_equals_direct_encoding_in_any_order(tiny_bert):
    enc = TextEncoder(tiny_bert, max_tokens=16)
    texts = ["the heart is normal .", "no effusion .", "left lung clear .", "right lung clear . the heart is normal ."] * 3
    cache = TextFeatureCache(enc, texts, torch.device("cpu"), chunk=4)
    got = cache(torch.tensor([7, 1]))
    assert list(cache.known) == [1] * 8 + [0] * 4  # whole blocks of 4 were encoded
    assert torch.equal(cache([7, 1]), got)  # rows as a list (what the training step passes)
    with torch.no_grad():
        alone = enc(**enc.tokenize([texts[7]]))
    torch.testing.assert_close(got[0], alone[0], atol=1e-5, rtol=1e-5)
    # Another order gives bit-identical features (blocks fix the batch composition).
    other = TextFeatureCache(enc, texts, torch.device("cpu"), chunk=4)
    other(torch.tensor([11, 0, 5]))
    assert torch.equal(other(torch.tensor([7, 1])), got)


def test_bad_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        TextEncoder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot load"):
        TextEncoder(tmp_path / "empty")


def test_default_minilm_loads_offline():
    path = default_text_encoder_path()
    enc = TextEncoder(path)
    assert enc.hidden_size == 384
    with torch.no_grad():
        out = enc(**enc.tokenize(["the heart is normal in size .", "small left pleural effusion ."]))
    assert out.shape == (2, 384) and torch.isfinite(out).all()
