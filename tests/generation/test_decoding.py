"""Beam search and sampling: the fast batched search against a slow, obviously correct reference.

The reference below follows the definitions of irralctl/generation/decoding.py literally: one
study at a time, Python lists of hypotheses, and at every step the whole prefix is run through the
model again with teacher forcing (`model.forward`, no key/value cache, no beam bookkeeping on the
device). The fast search must return the same token sequences, and the same scores to float32
accuracy, for several settings, on a trained model with each tokeniser kind.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from irralctl.data.loader import LoaderConfig, ReportDataset, collate
from irralctl.data.prepared import PreparedDataset
from irralctl.errors import ConfigError
from irralctl.generation import DecodeConfig, decode, length_penalty
from irralctl.runs.loaded import load_run
from irralctl.generation.decoding import _block_ngrams, _Constraints
from tests.fixtures.generation import tiny_run


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bpe_run(run_dir):
    return load_run(run_dir, "cpu")


@pytest.fixture(scope="module")
def legacy_run(toy, tmp_path_factory):
    return load_run(tiny_run(toy, tmp_path_factory.mktemp("runs") / "legacy", tokenizer="legacy", epochs=12), "cpu")


def toy_batch(run, toy, n: int = 6):
    """The first n test studies (study 4 of the toy data has one view), as the loader gives them."""
    ds = ReportDataset(PreparedDataset(toy), "test", run.tokenizer, LoaderConfig(image_size=64))
    return collate([ds[i] for i in range(n)])


# -- the reference ------------------------------------------------------------------------------

def _forbidden(seq: tuple, tok: int, t: int, cfg: DecodeConfig, max_len: int, banned: set, eos: int) -> bool:
    if t == max_len:
        return tok != eos
    if tok in banned:
        return True
    if t < cfg.min_tokens and tok == eos:
        return True
    n = cfg.no_repeat_ngram
    if n and t >= n:
        gram = seq[t - n + 1:] + (tok,)
        return any(seq[i:i + n] == gram for i in range(t - n + 1))
    return False


def reference_beam_search(model, images, view_mask, cfg: DecodeConfig, max_len: int) -> list[list[tuple]]:
    """Per study: the finished pool [(rank, score, tokens incl. EOS)], best first."""
    mc = model.cfg
    k, eos, alpha = cfg.beam_size, mc.eos_id, cfg.length_penalty
    banned = set(model.banned_ids())
    out = []
    for b in range(images.shape[0]):
        live = [((), 0.0)]
        pool: list[tuple] = []
        for t in range(max_len + 1):
            prefixes = torch.tensor([[mc.bos_id, *seq, mc.pad_id] for seq, _ in live])  # last one: a dummy
            with torch.no_grad():
                logits = model(images[b:b + 1].expand(len(live), -1, -1, -1),
                               view_mask[b:b + 1].expand(len(live), -1), prefixes).logits
            logp = logits[:, t].float().log_softmax(dim=-1).tolist()       # position t predicts token t + 1
            pairs = [(score + logp[i][tok], i, tok)
                     for i, (seq, score) in enumerate(live) for tok in range(mc.vocab_size)
                     if not _forbidden(seq, tok, t, cfg, max_len, banned, eos)]
            pairs.sort(key=lambda p: -p[0])
            top = pairs[: 2 * k]
            for r, (score, i, tok) in enumerate(top):
                if tok == eos and r < k:
                    pool.append((score / length_penalty(t + 1, alpha), score, live[i][0] + (tok,)))
            pool = sorted(pool, key=lambda p: -p[0])[:k]
            live = [(live[i][0] + (tok,), score) for score, i, tok in top if tok != eos][:k]
            if not live:
                break
            best = max(score for _, score in live)
            bound_len = max_len + 1 if alpha > 0 else t + 2 if alpha < 0 else None
            bound = best if bound_len is None else best / length_penalty(bound_len, alpha)
            if len(pool) == k and bound <= pool[-1][0]:
                break
        out.append(pool)
    return out


def assert_same(run, batch, cfg: DecodeConfig, max_len: int):
    model = run.model
    with torch.no_grad():
        encoded = model.encode(batch["images"], batch["view_mask"])
    fast = decode(model, encoded, cfg)
    ref = reference_beam_search(model, batch["images"], batch["view_mask"], cfg, max_len)
    for b, pool in enumerate(ref):
        assert len(pool) >= cfg.n_best
        for k in range(cfg.n_best):
            rank, score, seq = pool[k]
            length = int(fast.lengths[b, k])
            assert fast.tokens[b, k, :length].tolist() == list(seq), (b, k, cfg)
            assert (fast.tokens[b, k, length:] == model.cfg.pad_id).all()
            assert float(fast.scores[b, k]) == pytest.approx(score, abs=2e-4), (b, k, cfg)
            assert float(fast.ranks[b, k]) == pytest.approx(rank, abs=2e-4), (b, k, cfg)
    return fast


# -- equivalence --------------------------------------------------------------------------------

# The reference runs the whole model again at every step of every hypothesis (a second or two per
# setting): the fast subset checks one (beam, n-best, minimum length, negative length penalty), the
# full suite all of them.
slow = pytest.mark.slow


@pytest.mark.parametrize("cfg, max_len", [
    pytest.param(DecodeConfig(beam_size=1, max_tokens=24), 24, marks=slow, id="greedy"),
    pytest.param(DecodeConfig(beam_size=3, n_best=3, max_tokens=24), 24, marks=slow, id="beam3"),
    pytest.param(DecodeConfig(beam_size=5, n_best=5, check_every=1, max_tokens=24), 24, marks=slow, id="beam5-check1"),
    pytest.param(DecodeConfig(beam_size=3, n_best=2, min_tokens=22, no_repeat_ngram=2, max_tokens=26), 26, marks=slow,
                 id="minlen-ngram2"),
    pytest.param(DecodeConfig(beam_size=3, n_best=3, length_penalty=1.0, no_repeat_ngram=3, check_every=2,
                              max_tokens=24), 24, marks=slow, id="lp1-ngram3"),
    pytest.param(DecodeConfig(beam_size=4, n_best=2, length_penalty=-0.5, min_tokens=5, max_tokens=8), 8,
                 id="lp-negative-short"),
])
def test_fast_beam_search_equals_reference_bpe(bpe_run, toy, cfg, max_len):
    fast = assert_same(bpe_run, toy_batch(bpe_run, toy), cfg, max_len)
    if cfg.min_tokens:
        assert (fast.lengths[:, : cfg.n_best] - 1 >= cfg.min_tokens).all()
    assert (fast.lengths - 1 <= max_len).all()


@pytest.mark.slow  # and `legacy_run` trains a second model
@pytest.mark.parametrize("cfg", [DecodeConfig(beam_size=1), DecodeConfig(beam_size=3, n_best=3),
                                 DecodeConfig(beam_size=3, min_tokens=20, no_repeat_ngram=3, length_penalty=0.6)],
                         ids=["greedy", "beam3", "minlen-ngram3-lp"])
def test_fast_beam_search_equals_reference_legacy(legacy_run, toy, cfg):
    mc = legacy_run.model.cfg
    assert mc.bos_id == mc.eos_id == mc.pad_id == 0 and legacy_run.model.banned_ids() == []
    assert_same(legacy_run, toy_batch(legacy_run, toy), replace(cfg, max_tokens=24), 24)


def test_reports_are_the_trained_ones(bpe_run, toy):
    batch = toy_batch(bpe_run, toy)
    model, tok = bpe_run.model, bpe_run.tokenizer
    with torch.no_grad():
        encoded = model.encode(batch["images"], batch["view_mask"])
    records = PreparedDataset(toy).records("test")[:6]
    for beam in (1, 3):
        fast = decode(model, encoded, DecodeConfig(beam_size=beam, max_tokens=24))
        # The model learnt the toy task: most reports are exactly the reference, as far as the 24
        # tokens it was trained on (the normal report is longer in this small BPE vocabulary).
        wanted = [tok.decode(tok.encode(r["target"])[:24]) for r in records]
        assert sum(tok.decode(fast.ids(b)) == wanted[b] for b in range(6)) >= 4, beam


def test_batch_composition_does_not_change_a_study(bpe_run, toy):
    batch = toy_batch(bpe_run, toy)
    model = bpe_run.model
    cfg = DecodeConfig(beam_size=3, n_best=3, check_every=1, max_tokens=24)
    with torch.no_grad():
        whole = decode(model, model.encode(batch["images"], batch["view_mask"]), cfg)
        for b in (0, 4):
            one = decode(model, model.encode(batch["images"][b:b + 1], batch["view_mask"][b:b + 1]), cfg)
            assert torch.equal(one.tokens[0], whole.tokens[b])
            assert torch.allclose(one.scores[0], whole.scores[b], atol=1e-5)


def test_block_ngrams_blocks_exactly_the_completing_tokens():
    history = torch.tensor([[5, 6, 7, 5, 6], [1, 2, 3, 4, 5]])
    logp = torch.zeros(2, 10)
    _block_ngrams(logp, history, 3)
    assert logp[0].isinf().nonzero().flatten().tolist() == [7]      # "5 6" was followed by 7
    assert not logp[1].isinf().any()
    logp = torch.zeros(2, 10)
    _block_ngrams(logp, history, 2)
    assert logp[0].isinf().nonzero().flatten().tolist() == [7]      # "6" was followed by 7
    logp = torch.zeros(2, 10)
    _block_ngrams(logp, history, 1)
    assert logp[1].isinf().nonzero().flatten().tolist() == [1, 2, 3, 4, 5]


def test_constraints_at_each_step(bpe_run):
    model = bpe_run.model  # BPE: PAD 0, BOS 1, EOS 2 -> PAD and BOS banned
    rules = _Constraints(model, DecodeConfig(min_tokens=2, no_repeat_ngram=2, max_tokens=5), device=torch.device("cpu"))
    history = torch.tensor([[9, 9, 0, 0, 0, 0]])
    vocab = model.cfg.vocab_size
    unspeakable = set(model.cfg.unspeakable)    # lone bytes of multi-byte characters (ids above 12 here)
    assert unspeakable and min(unspeakable) > 12

    def blocked(step):
        ids = rules.apply(torch.zeros(1, vocab), history, step)[0].isinf().nonzero().flatten().tolist()
        assert unspeakable <= set(ids)
        return [i for i in ids if i < 12]

    assert blocked(0) == [0, 1, 2]          # banned ids, and EOS before min_tokens
    assert blocked(1) == [0, 1, 2]
    assert blocked(2) == [0, 1, 9]          # EOS allowed from 2 tokens on; "9 9" would repeat
    allowed = rules.apply(torch.zeros(1, vocab), history, 5)[0].isfinite().nonzero().flatten().tolist()
    assert allowed == [2]                   # after max_tokens tokens only EOS


def test_no_repeat_ngram_holds_in_every_hypothesis(bpe_run, toy):
    batch = toy_batch(bpe_run, toy)
    model = bpe_run.model
    with torch.no_grad():
        encoded = model.encode(batch["images"], batch["view_mask"])
    hyps = decode(model, encoded, DecodeConfig(beam_size=3, n_best=3, min_tokens=24, no_repeat_ngram=2, max_tokens=24))
    for b in range(6):
        for k in range(3):
            ids = hyps.ids(b, k)
            grams = list(zip(ids, ids[1:]))
            assert len(grams) == len(set(grams)), ids
    # Without the rule, forcing 24 tokens makes the toy model repeat itself.
    plain = decode(model, encoded, DecodeConfig(beam_size=3, min_tokens=24, max_tokens=24))
    assert any(len(set(zip(plain.ids(b), plain.ids(b)[1:]))) < len(plain.ids(b)) - 1 for b in range(6))


def test_sampling_is_seeded_constrained_and_scored(bpe_run, toy):
    batch = toy_batch(bpe_run, toy)
    model = bpe_run.model
    with torch.no_grad():
        encoded = model.encode(batch["images"], batch["view_mask"])
    cfg = DecodeConfig(sample=True, n_best=4, temperature=1.5, top_p=0.95, min_tokens=3, no_repeat_ngram=3, max_tokens=24)
    a = decode(model, encoded, cfg, torch.Generator().manual_seed(7))
    b = decode(model, encoded, cfg, torch.Generator().manual_seed(7))
    c = decode(model, encoded, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    assert (a.ranks[:, :-1] >= a.ranks[:, 1:]).all()                 # sorted best first
    assert (a.lengths - 1 >= 3).all() and (a.lengths - 1 <= 24).all()
    # The score is the model's log-probability of the sampled report (teacher forcing it again).
    for s in range(2):
        ids = a.ids(s, 0) + [model.cfg.eos_id]
        tokens = torch.tensor([[model.cfg.bos_id, *ids]])
        with torch.no_grad():
            logp = model(batch["images"][s:s + 1], batch["view_mask"][s:s + 1], tokens).logits.float().log_softmax(-1)
        expected = sum(float(logp[0, t, i]) for t, i in enumerate(ids))
        assert float(a.scores[s, 0]) == pytest.approx(expected, abs=1e-4)
    # top_p close to 0 keeps only the most likely token: sampling becomes greedy.
    g = decode(model, encoded, DecodeConfig(sample=True, n_best=1, top_p=1e-6, max_tokens=24), torch.Generator().manual_seed(0))
    greedy = decode(model, encoded, DecodeConfig(beam_size=1, max_tokens=24))
    assert torch.equal(g.tokens, greedy.tokens)


def test_length_penalty_is_gnmt():
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    assert length_penalty(1, 0.6) == pytest.approx(1.0)
    assert length_penalty(31, 0.5) == pytest.approx(math.sqrt(6.0))


@pytest.mark.parametrize("kw, message", [
    (dict(beam_size=0), "beam size"), (dict(n_best=4, beam_size=3), "exceeds the beam size"),
    (dict(min_tokens=10, max_tokens=5), "exceeds --max-tokens"), (dict(top_p=0.0), "top_p"),
    (dict(temperature=0), "temperature"),
])
def test_bad_decoding_options(kw, message):
    with pytest.raises(ConfigError, match=message):
        DecodeConfig(**kw)


def test_an_untrained_model_never_emits_a_broken_character():
    """Byte-level BPE pieces that are not whole UTF-8 characters are never generated: even random
    weights (which pick such pieces freely) give reports made of whole characters."""
    from irralctl.data.tokenizers import BPETokenizer
    from irralctl.model import ModelConfig, build_model

    texts = ["the heart is normal in size . café au lait spots .", "a 5 mm nodule ° right base . naïve reader ."] * 8
    tok = BPETokenizer.fit(texts, 300)
    assert tok.unspeakable_ids()  # the lone bytes of é, ï, ° ...
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, backbone="tiny", tiny_width=8, image_size=64, d_model=32, n_heads=4,
                      d_ff=32, enc_layers=1, dec_layers=1, memory_slots=16, memory_topk=4,
                      unspeakable=tuple(tok.unspeakable_ids()))
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.lm_head.bias[list(cfg.unspeakable)] = 5.0  # make the broken pieces the model's favourites
        encoded = model.encode(torch.randint(0, 256, (4, 2, 64, 64), dtype=torch.uint8), torch.ones(4, 2, dtype=torch.bool))
    for decoding in (DecodeConfig(beam_size=3, max_tokens=40, min_tokens=40),
                     DecodeConfig(sample=True, n_best=3, max_tokens=40, min_tokens=40)):
        hyps = decode(model, encoded, decoding, torch.Generator().manual_seed(1))
        for b in range(4):
            for k in range(hyps.tokens.shape[1]):
                text = tok.decode(hyps.ids(b, k))
                assert "\ufffd" not in text and len(hyps.ids(b, k)) == 40, text
