"""IRRAL-Net components: shapes, every parameter trained, the decoding interface, weights, losses."""

from __future__ import annotations

import pytest
import torch

from irralctl.errors import ConfigError, InputError
from irralctl.model import PRESETS, ModelConfig, TokenGrid, apply_preset, build_model
from irralctl.model.acl import ACLGate
from irralctl.model.init import init_weights
from irralctl.model.losses import clinical_bce, clinical_targets, token_nll
from irralctl.model.memory import CrossModalMemory

V = 40


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: no OpenMP spin-waits


def tiny(**kw) -> ModelConfig:
    base = dict(vocab_size=V, backbone="tiny", tiny_width=8, image_size=64, d_model=32, n_heads=4, d_ff=32,
                enc_layers=2, dec_layers=2, memory_slots=48, memory_topk=6, text_dim=24, dropout=0.0)
    base.update(kw)
    return ModelConfig(**base)


def batch(b: int = 3, t: int = 7, seed: int = 0, bos: int = 1):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (b, 2, 64, 64), dtype=torch.uint8, generator=g)
    view_mask = torch.ones(b, 2, dtype=torch.bool)
    view_mask[1, 1] = False  # a single-view study
    tokens = torch.randint(3, V, (b, t), generator=g)
    tokens[:, 0] = bos
    return images, view_mask, tokens


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_forward_backward_trains_every_parameter(preset):
    torch.manual_seed(0)
    model = build_model(tiny(**apply_preset(preset)))
    images, view_mask, tokens = batch()
    out = model(images, view_mask, tokens, torch.randn(3, 24))
    assert out.logits.shape == (3, 6, V)
    config = PRESETS[preset]
    # The clinical head belongs to ACL: no other preset has it (nor its loss).
    assert (out.clinical_logits is not None) == config["acl"]
    loss = out.logits.square().mean()
    if out.clinical_logits is not None:
        assert out.clinical_logits.shape == (3, 14)
        loss = loss + out.clinical_logits.square().mean()
    if out.z_img is not None:
        assert out.z_img.shape == out.z_txt.shape == (3, 32)
        loss = loss + (out.z_img * out.z_txt).sum()
    loss.backward()
    # DistributedDataParallel needs a gradient for every parameter.
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


def test_presets_switch_components():
    baseline = build_model(tiny(**apply_preset("baseline")))
    assert baseline.memory is None and baseline.clinical is None and baseline.visual is not None
    assert build_model(tiny(**apply_preset("no-image"))).visual is None
    cmn = build_model(tiny(**apply_preset("cmn")))
    assert cmn.memory is not None and cmn.gate is None and cmn.text_head is None and cmn.clinical is None
    mfa, acl = build_model(tiny(**apply_preset("mfa"))), build_model(tiny(**apply_preset("acl")))
    assert mfa.text_head is not None and mfa.clinical is None and mfa.context is None
    assert acl.clinical is not None and acl.context is not None and acl.text_head is None
    irral = build_model(tiny(**apply_preset("irral")))
    assert irral.gate is not None and irral.text_head is not None and irral.visual.fusion is not None
    # ACL without CMN still owns a memory matrix (T is its read-out) but does not add it to the inputs.
    acl_only = build_model(tiny(memory=False, acl=True, mfa=False))
    assert acl_only.memory is not None
    with pytest.raises(ConfigError):
        apply_preset("nope")


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_cached_decoding_equals_teacher_forcing(preset):
    torch.manual_seed(1)
    model = build_model(tiny(**apply_preset(preset))).eval()
    images, view_mask, tokens = batch(t=9)
    with torch.no_grad():
        full = model(images, view_mask, tokens).logits
        state = model.init_decode_state(model.encode(images, view_mask))
        steps = []
        for t in range(tokens.shape[1] - 1):
            logits, state = model.decode_step(tokens[:, t], state)
            steps.append(logits)
    assert state.step == tokens.shape[1] - 1
    assert state.self_kv[0][0].shape == (3, 4, tokens.shape[1] - 1, 8)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=1e-4)


def test_beam_groups_share_cross_attention_and_reorder():
    torch.manual_seed(2)
    model = build_model(tiny()).eval()
    images, view_mask, tokens = batch(b=2, t=5)
    group = 3
    with torch.no_grad():
        enc = model.encode(images, view_mask)
        single = model.init_decode_state(enc)
        grouped = model.init_decode_state(enc, group=group)
        assert grouped.cross_kv[0][0].shape[0] == 2  # K/V stored once per study, not per beam
        # Row 3*b + j decodes study b with a different prefix per beam j.
        beams = torch.stack([tokens[:, :4], tokens[:, :4].roll(1, dims=0), tokens[:, :4].flip(1)], dim=1).reshape(6, 4)
        for t in range(4):
            g_logits, grouped = model.decode_step(beams[:, t], grouped)
        # Each beam must match decoding its prefix alone against its own study.
        for row in range(6):
            s = model.init_decode_state(enc.index_select(torch.tensor([row // group])))
            for t in range(4):
                logits, s = model.decode_step(beams[row:row + 1, t], s)
            torch.testing.assert_close(g_logits[row:row + 1], logits, atol=1e-5, rtol=1e-4)
        # Reordering within groups: row r continues the history of perm[r].
        perm = torch.tensor([2, 0, 1, 3, 3, 5])
        next_tok = torch.full((6,), 5)
        after, _ = model.decode_step(next_tok, grouped.reorder(perm))
        for row in range(6):
            s = model.init_decode_state(enc.index_select(torch.tensor([row // group])))
            for t in range(4):
                _, s = model.decode_step(beams[perm[row]:perm[row] + 1, t], s)
            logits, _ = model.decode_step(next_tok[:1], s)
            torch.testing.assert_close(after[row:row + 1], logits, atol=1e-5, rtol=1e-4)
        # Dropping a study keeps the other one's rows intact.
        kept = grouped.select_studies(torch.tensor([1]))
        assert kept.batch_size == 3 and kept.cross_mask.shape[0] == 1
        sub, _ = model.decode_step(next_tok[:3], kept)
        full, _ = model.decode_step(next_tok, grouped)
        torch.testing.assert_close(sub, full[3:], atol=1e-5, rtol=1e-4)
        del single


def test_cross_attention_weights_on_request():
    model = build_model(tiny(**apply_preset("cmn"))).eval()
    images, view_mask, tokens = batch()
    with torch.no_grad():
        enc = model.encode(images, view_mask)
        state = model.init_decode_state(enc)
        logits, state, attention = model.decode_step(tokens[:, 0], state, need_attention=True)
        plain, _ = model.decode_step(tokens[:, 0], model.init_decode_state(enc))
    grid = enc.grid
    assert isinstance(grid, TokenGrid) and grid.tokens == enc.memory.shape[1] == 2 * 4 * 4
    assert len(attention) == 2 and attention[0].shape == (3, 4, grid.tokens)
    torch.testing.assert_close(attention[1].sum(-1), torch.ones(3, 4))
    # Study 1 has one view: its second view's tokens get no attention.
    assert attention[0][1, :, grid.height * grid.width:].abs().max() == 0
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-4)
    assert grid.position(17) == (1, 0, 1)
    assert not hasattr(model, "attention") and "attention" not in vars(model)


def test_greedy_decoding_stops_at_eos_and_never_emits_pad_or_bos():
    from irralctl.generation import DecodeConfig, decode

    model = build_model(tiny()).eval()
    images, view_mask, _ = batch()
    assert model.banned_ids() == [0, 1]
    greedy = DecodeConfig(beam_size=1, max_tokens=8)
    with torch.no_grad():
        model.lm_head.bias.zero_()
        model.lm_head.bias[0] = 100.0   # PAD would win, but is banned
        model.lm_head.bias[7] = 50.0
        out = decode(model, model.encode(images, view_mask), greedy)
        assert (out.lengths[:, 0] == 9).all()  # 8 report tokens, then only EOS may follow
        assert (out.tokens[:, 0, :8] == 7).all() and (out.tokens[:, 0, 8] == 2).all()
        model.lm_head.bias[2] = 60.0    # EOS now wins: stop at once, pad after
        out = decode(model, model.encode(images, view_mask), greedy)
    assert (out.lengths[:, 0] == 1).all() and (out.tokens[:, 0, 0] == 2).all() and (out.tokens[:, 0, 1:] == 0).all()


def test_legacy_ids_all_zero():
    from irralctl.generation import DecodeConfig, decode

    model = build_model(tiny(pad_id=0, bos_id=0, eos_id=0)).eval()
    assert model.banned_ids() == []
    images, view_mask, tokens = batch(bos=0)
    with torch.no_grad():
        model.lm_head.bias.zero_()
        model.lm_head.bias[0] = 50.0
        out = decode(model, model.encode(images, view_mask), DecodeConfig(beam_size=1, max_tokens=5))
    assert (out.tokens == 0).all() and (out.lengths == 1).all()


def test_no_image_ignores_images():
    model = build_model(tiny(**apply_preset("no-image"))).eval()
    assert model.visual is None
    images, view_mask, tokens = batch()
    with torch.no_grad():
        a = model(images, view_mask, tokens).logits
        b = model(torch.zeros_like(images), torch.zeros_like(view_mask), tokens).logits
    torch.testing.assert_close(a, b)


def test_resnet_backbone_grid_and_multiscale():
    cfg = tiny(backbone="resnet18", image_size=64)
    model = build_model(cfg).eval()
    assert model.grid == TokenGrid(2, 2, 2)
    images, view_mask, tokens = batch()
    with torch.no_grad():
        assert model(images, view_mask, tokens).logits.shape == (3, 6, V)
    with pytest.raises(ValueError, match="token grid"):
        model.encode(torch.zeros(1, 2, 96, 96, dtype=torch.uint8), torch.ones(1, 2, dtype=torch.bool))


@pytest.mark.slow  # builds torchvision's ResNet-18 and -50 and saves their weights (100 MB)
def test_visual_weights_load_from_torchvision_state_dict(tmp_path):
    import torchvision

    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model(tiny(backbone="resnet18"), visual_weights=path)
    trunk = model.visual.backbone
    torch.testing.assert_close(trunk.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    torch.testing.assert_close(trunk.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.testing.assert_close(trunk.bn1.running_var, reference.bn1.running_var)
    # A grey image through the converted conv1 equals the RGB-repeated image through the original.
    x = torch.randn(1, 1, 32, 32)
    torch.testing.assert_close(trunk.conv1(x), reference.conv1(x.expand(1, 3, 32, 32)), atol=1e-5, rtol=1e-5)

    wrong = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), wrong)
    with pytest.raises(InputError, match="do not fit|do not match"):
        build_model(tiny(backbone="resnet18"), visual_weights=wrong)
    with pytest.raises(InputError, match="not found"):
        build_model(tiny(backbone="resnet18"), visual_weights=tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        build_model(tiny(backbone="resnet18"), visual_weights=junk)


def test_memory_reads_only_top_k_slots():
    torch.manual_seed(3)
    mem = CrossModalMemory(d_model=8, slots=20, topk=3, n_heads=2).eval()
    init_weights(mem, seed=3)
    x = torch.randn(2, 5, 8)
    k, v = mem.keys_values()
    q = mem.q_proj(x).view(2, 5, 2, 4).transpose(1, 2)
    scores = q @ k.transpose(-2, -1) / 2.0
    top = scores.topk(3, dim=-1)
    w = top.values.softmax(-1)
    expected = (w.unsqueeze(-1) * v[torch.arange(2)[None, :, None, None], top.indices]).sum(-2)
    expected = mem.out_proj(expected.transpose(1, 2).reshape(2, 5, 8))
    torch.testing.assert_close(mem(x), expected, atol=1e-6, rtol=1e-5)


def test_acl_gate_is_a_convex_mix_per_channel():
    gate = ACLGate(14, 6)
    alpha = gate(torch.rand(2, 14))
    assert alpha.shape == (2, 1, 6) and ((alpha > 0) & (alpha < 1)).all()
    v, t = torch.zeros(2, 3, 6), torch.ones(2, 3, 6)
    torch.testing.assert_close(ACLGate.fuse(v, t, alpha), (1 - alpha).expand(2, 3, 6))


def test_token_nll_uses_lengths_not_pad_ids():
    # Legacy ids: BOS = EOS = PAD = 0; the EOS of a short report must count, its padding must not.
    tokens = torch.tensor([[0, 5, 6, 0, 0, 0], [0, 5, 6, 7, 8, 0]])
    lengths = torch.tensor([4, 6])
    logits = torch.zeros(2, 5, 10)
    total, count = token_nll(logits, tokens, lengths)
    assert int(count) == 3 + 5
    torch.testing.assert_close(total, torch.tensor(8 * torch.log(torch.tensor(10.0)).item()))


def test_clinical_label_policy():
    labels = torch.tensor([[1, 0, -1, -2]])
    t, m = clinical_targets(labels, "mask")
    assert t.tolist() == [[1, 0, 0, 0]] and m.tolist() == [[True, True, False, True]]
    t, m = clinical_targets(labels, "positive")
    assert t.tolist() == [[1, 0, 1, 0]] and m.all()
    logits = torch.zeros(1, 4)
    s, n = clinical_bce(logits, labels, torch.tensor([1.0, 2.0, 1.0, 1.0]))
    assert int(n) == 3
    torch.testing.assert_close(s, torch.tensor(4 * 0.6931472))


def test_acl_adds_the_clinical_context_to_every_token():
    model = build_model(tiny()).eval()
    images, view_mask, tokens = batch()
    with torch.no_grad():
        enc = model.encode(images, view_mask)
        n = enc.grid.tokens
        assert enc.memory.shape[1] == enc.memory_mask.shape[1] == n      # no extra tokens: positions stay the grid's
        probs = torch.sigmoid(enc.clinical_logits)
        # Other probabilities, another context; the same study reads it on every token.
        assert not torch.allclose(model.context(torch.zeros(1, 14)), model.context(torch.ones(1, 14)))
        assert model.context(probs).shape == (3, 32)
        # Training may give C from the labels (NaN: the head's own prediction).
        known = torch.full((3, 14), float("nan"))
        known[0] = 1.0
        out = model(images, view_mask, tokens, known_context=known)
        plain = model(images, view_mask, tokens)
    assert not torch.allclose(out.logits[0], plain.logits[0])
    torch.testing.assert_close(out.logits[1:], plain.logits[1:])


def test_batchnorm_statistics_ignore_missing_views():
    model = build_model(tiny(**apply_preset("baseline"), backbone="resnet18", image_size=64))
    images, view_mask, _ = batch()
    view_mask[1, 1] = False
    with torch.no_grad():
        model.train()
        model.visual(images, view_mask)
        with_blank = [m.running_mean.clone() for m in model.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        model2 = build_model(tiny(**apply_preset("baseline"), backbone="resnet18", image_size=64)).train()
        # The same batch with the blank view's pixels changed: BatchNorm must not see them.
        images2 = images.clone()
        images2[1, 1] = 255
        model2.visual(images2, view_mask)
        changed = [m.running_mean for m in model2.visual.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for a, b in zip(with_blank, changed):
        torch.testing.assert_close(a, b)


def test_context_decisions_give_the_decoder_the_head_decisions():
    """With --ctx-decisions the gate and the context read the head's decisions (0 or 1) where the
    labels do not give C; the head's own logits are unchanged."""
    images, view_mask, _ = batch()
    probs_model = build_model(tiny()).eval()
    decisions = build_model(tiny(context_decisions=True)).eval()
    with torch.no_grad():
        for p in decisions.context.parameters():
            p.normal_()  # the context starts at zero: give it something to show
        probs_model.load_state_dict(decisions.state_dict())
        seen = []
        decisions.context.register_forward_hook(lambda m, args, out: seen.append(args[0]))
        enc = decisions.encode(images, view_mask)
        soft = probs_model.encode(images, view_mask)
        torch.testing.assert_close(enc.clinical_logits, soft.clinical_logits)
        want = (torch.sigmoid(enc.clinical_logits) >= 0.5).float()
        torch.testing.assert_close(seen[0], want)
        torch.testing.assert_close(enc.word_context, decisions.context(want))
        assert not torch.allclose(enc.word_context, soft.word_context)
        # In training, C from the labels still overrides the decisions where it is given.
        known = torch.full_like(want, float("nan"))
        known[0] = 1.0 - want[0]
        seen.clear()
        decisions._encode(images, view_mask, decisions._memory_kv(), known)
        torch.testing.assert_close(seen[0], torch.where(known.isnan(), want, known))


def test_context_words_put_the_clinical_context_on_every_word():
    """With --ctx-words (the default) C is added to every word embedding as well as to every
    visual token; without it, or without ACL, the words carry no context."""
    images, view_mask, tokens = batch()
    on = build_model(tiny()).eval()
    off = build_model(tiny(context_words=False)).eval()
    plain = build_model(tiny(**apply_preset("cmn"))).eval()
    with torch.no_grad():
        enc_on, enc_off = on.encode(images, view_mask), off.encode(images, view_mask)
        torch.testing.assert_close(enc_on.word_context, on.context(torch.sigmoid(enc_on.clinical_logits)))
        assert enc_off.word_context is None and plain.encode(images, view_mask).word_context is None
        torch.testing.assert_close(enc_on.memory, enc_off.memory)   # same weights: the visual tokens agree
        assert not torch.allclose(on.teacher_force(enc_on, tokens), off.teacher_force(enc_off, tokens))
        # Incremental decoding adds the same context at every step (rows of a beam group included).
        state = on.init_decode_state(enc_on, group=2)
        assert state.word_context.shape == (3, 1, 32)
        kept = state.select_studies(torch.tensor([2]))
        torch.testing.assert_close(kept.word_context, state.word_context[2:])
