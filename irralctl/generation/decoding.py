"""Decoding reports from encoded studies: batched beam search (greedy is its width-1 case) and sampling.

This is the only decoder of irralctl: `generate`, `heatmap` and training's validation and test
all call `decode`.

Everything runs on the model's device, vectorised over studies x beams, on top of the model's
incremental interface (`init_decode_state`, `decode_step` with its per-layer key/value cache,
`DecodeState.reorder` / `select_studies`). The host synchronises only every `check_every` steps,
to stop once every study is done and to drop finished studies from the batch.

Definitions (tests/test_generation_decoding.py holds a slow per-study reference that follows them
literally, re-running the whole prefix through the model at every step, and checks that this
implementation returns the same sequences and scores):

* A hypothesis is the tokens y_1 .. y_L generated after BOS. Every returned hypothesis ends with
  EOS, and L counts it.
* score(y) = sum_t log p(y_t | y_<t, images): float32 log-softmax over the whole vocabulary; a
  forbidden token is set to -inf without renormalising the others.
* rank(y) = score(y) / lp(L) with GNMT's length penalty lp(L) = ((5 + L) / 6) ** alpha (Wu et al.
  2016, "Google's Neural Machine Translation System"). alpha = 0 (the default) ranks by the plain
  sum of log-probabilities, as R2Gen/CMN's beam search; alpha > 0 favours longer reports.
* Forbidden next tokens: the model's `banned_ids()` (PAD and BOS unless they double as EOS); EOS
  while fewer than `min_tokens` report tokens exist; with `no_repeat_ngram` n, every token that
  would complete an n-gram of tokens already present in that hypothesis (R2Gen's `block_trigrams`
  is n = 3, which its beam search ignored); after `max_tokens` report tokens every token but EOS,
  so a report never exceeds `max_tokens` tokens (plus EOS).
* Beam search of width K keeps K live hypotheses per study (at the start: BOS alone). Each step
  takes the 2K best (live hypothesis, next token) pairs by score, best first. An EOS pair among the
  first K finishes its hypothesis, which enters the study's pool of the K best finished hypotheses
  by rank; the first K pairs that are not EOS become the live hypotheses.
* A study is done when its pool is full and no live hypothesis can still beat the pool's worst:
  continuations only lower a score (log-probabilities are <= 0), so score / lp(L) is bounded with
  L the longest possible length when alpha > 0, the next length when alpha < 0, and lp = 1 when
  alpha = 0. A done study's pool never changes again; decoding ends when every study is done, or
  after max_tokens + 1 steps.
* The result is the pool sorted by rank, best first; `n_best` are returned.
* Sampling draws `n_best` independent reports per study: each token from the nucleus (`top_p`) of
  softmax(logits / temperature) over the allowed tokens; score and rank as above (the score is
  the model's log-probability, not the tempered one); samples are sorted by rank.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from irralctl.errors import ConfigError
from irralctl.generation.config import DecodeConfig
from irralctl.model import Encoded, IRRALNet

NEG_INF = float("-inf")


@dataclass
class Hypotheses:
    """Decoded hypotheses of a batch, best first per study, on the CPU.

    tokens[b, k, :lengths[b, k]] are hypothesis k of study b, EOS last; the rest is PAD.
    """

    tokens: torch.Tensor   # (B, n, max_tokens + 1) long
    lengths: torch.Tensor  # (B, n) long, EOS included
    scores: torch.Tensor   # (B, n) float: sum of log-probabilities
    ranks: torch.Tensor    # (B, n) float: score / lp(length)

    def ids(self, b: int, k: int = 0) -> list[int]:
        """Hypothesis k of study b without its EOS."""
        return self.tokens[b, k, : max(int(self.lengths[b, k]) - 1, 0)].tolist()


def length_penalty(length: int | torch.Tensor, alpha: float):
    """GNMT's lp(L) = ((5 + L) / 6) ** alpha."""
    return ((5.0 + length) / 6.0) ** alpha


def _bound_length(alpha: float, step: int, total_steps: int) -> int | None:
    """The length whose lp bounds every continuation of a live hypothesis after `step` (None: lp = 1)."""
    if alpha > 0:
        return total_steps
    if alpha < 0:
        return step + 2
    return None


class _Constraints:
    """Applies the forbidden-token rules of the module docstring to (R, V) log-probabilities, in place."""

    def __init__(self, model: IRRALNet, cfg: DecodeConfig, device: torch.device):
        self.eos = model.cfg.eos_id
        banned = model.banned_ids()
        self.banned = torch.tensor(banned, dtype=torch.long, device=device) if banned else None
        self.min_tokens, self.last_step, self.n = cfg.min_tokens, cfg.max_tokens, cfg.no_repeat_ngram

    def apply(self, logp: torch.Tensor, history: torch.Tensor, step: int) -> torch.Tensor:
        """logp: (R, V); history: (R, >= step) tokens generated so far by each row."""
        if step == self.last_step:  # only EOS may follow max_tokens report tokens
            eos = logp[:, self.eos].clone()
            logp.fill_(NEG_INF)
            logp[:, self.eos] = eos
            return logp
        if self.banned is not None:
            logp.index_fill_(1, self.banned, NEG_INF)
        if step < self.min_tokens:
            logp[:, self.eos] = NEG_INF
        if self.n and step >= self.n:
            _block_ngrams(logp, history[:, :step], self.n)
        return logp


def _block_ngrams(logp: torch.Tensor, history: torch.Tensor, n: int) -> None:
    """Forbid every token that would complete an n-gram already in each row of `history` (R, t)."""
    t = history.shape[1]
    windows = t - n + 1                                                 # earlier n-grams: starts 0 .. t-n
    following = history[:, n - 1: n - 1 + windows]                     # (R, W): the n-th token of each
    if n == 1:
        match = torch.ones_like(following, dtype=torch.bool)
    else:
        prefix = history[:, t - n + 1:]                                 # (R, n-1): the last n-1 tokens
        starts = history[:, : t - 1].unfold(1, n - 1, 1)[:, :windows]   # (R, W, n-1)
        match = (starts == prefix[:, None, :]).all(dim=-1)              # (R, W)
    hits = torch.zeros_like(logp).scatter_add_(1, following, match.to(logp.dtype))  # (R, V) counts
    logp.masked_fill_(hits > 0, NEG_INF)


@torch.inference_mode()
def beam_search(model: IRRALNet, encoded: Encoded, cfg: DecodeConfig) -> Hypotheses:
    """Beam search of width cfg.beam_size over the studies of `encoded` (see the module docstring)."""
    mc = model.cfg
    k = cfg.beam_size
    n_studies = encoded.memory.shape[0]
    device = encoded.memory.device
    vocab, steps, eos, alpha = mc.vocab_size, cfg.max_tokens + 1, mc.eos_id, cfg.length_penalty
    rules = _Constraints(model, cfg, device)

    state = model.init_decode_state(encoded, group=k)
    b = n_studies                                                       # studies still decoded
    alive = torch.arange(b, device=device)                              # their original indices
    tokens_in = torch.full((b * k,), mc.bos_id, dtype=torch.long, device=device)
    live = torch.zeros(b, k, device=device)
    live[:, 1:] = NEG_INF                                               # BOS once, not k times
    seqs = torch.full((b, k, steps), mc.pad_id, dtype=torch.long, device=device)
    pool = _Pool.empty(b, k, steps, mc.pad_id, device)
    done = torch.zeros(b, dtype=torch.bool, device=device)
    result = _Pool.empty(n_studies, k, steps, mc.pad_id, device)
    pair_rank = torch.arange(2 * k, device=device)
    study_rows = torch.arange(b, device=device)[:, None] * k            # (b, 1)

    for t in range(steps):
        logits, state = model.decode_step(tokens_in, state)
        logp = rules.apply(logits.float().log_softmax(dim=-1), seqs.view(b * k, steps), t)  # (b*k, V)
        pairs = (live.view(-1, 1) + logp).view(b, k * vocab)
        val, idx = pairs.topk(2 * k, dim=1)                             # (b, 2k), best first
        beam, tok = idx // vocab, idx % vocab
        is_eos = tok == eos

        # EOS among the first k pairs: finished hypotheses, merged into the pool by rank.
        f_val, f_beam, f_tok = val[:, :k], beam[:, :k], tok[:, :k]
        eligible = is_eos[:, :k] & (f_val > NEG_INF) & ~done[:, None]
        f_rank = torch.where(eligible, f_val / length_penalty(t + 1, alpha), NEG_INF)
        f_seq = seqs.gather(1, f_beam[:, :, None].expand(-1, -1, steps)).clone()
        f_seq[:, :, t] = f_tok
        pool = pool.merge(f_rank, f_val, t + 1, f_seq)

        # The first k pairs that are not EOS continue (non-EOS first, in rank order).
        order = (is_eos.long() * (2 * k) + pair_rank).topk(k, dim=1, largest=False).indices  # (b, k)
        live = val.gather(1, order)
        live_beam, live_tok = beam.gather(1, order), tok.gather(1, order)
        seqs = seqs.gather(1, live_beam[:, :, None].expand(-1, -1, steps))
        seqs[:, :, t] = live_tok
        state = state.reorder((study_rows + live_beam).flatten())
        tokens_in = live_tok.flatten()

        best = live.max(dim=1).values
        bound_len = _bound_length(alpha, t, steps)
        bound = best if bound_len is None else best / length_penalty(bound_len, alpha)
        worst = pool.rank[:, -1]
        done |= ((worst > NEG_INF) & (bound <= worst)) | (best == NEG_INF)

        if t + 1 < steps and (t + 1) % cfg.check_every == 0:
            n_done = int(done.sum())                                    # the periodic host sync
            if n_done == b:
                break
            if n_done * 4 >= b:                                         # drop finished studies
                keep = (~done).nonzero().squeeze(1)
                finished = done.nonzero().squeeze(1)
                result.put(alive[finished], pool.select(finished))
                alive, pool, live, seqs, done = alive[keep], pool.select(keep), live[keep], seqs[keep], done[keep]
                tokens_in = tokens_in.view(b, k)[keep].flatten()
                state = state.select_studies(keep)
                b = keep.numel()
                study_rows = torch.arange(b, device=device)[:, None] * k
    result.put(alive, pool)
    n = cfg.n_best
    return Hypotheses(result.seq[:, :n].cpu(), result.length[:, :n].cpu(), result.score[:, :n].cpu(),
                      result.rank[:, :n].cpu())


@dataclass
class _Pool:
    """Each study's k best finished hypotheses, sorted by rank (empty slots rank -inf)."""

    rank: torch.Tensor    # (b, k)
    score: torch.Tensor   # (b, k)
    length: torch.Tensor  # (b, k) long
    seq: torch.Tensor     # (b, k, steps) long

    @classmethod
    def empty(cls, b: int, k: int, steps: int, pad_id: int, device: torch.device) -> _Pool:
        return cls(torch.full((b, k), NEG_INF, device=device), torch.full((b, k), NEG_INF, device=device),
                   torch.zeros(b, k, dtype=torch.long, device=device),
                   torch.full((b, k, steps), pad_id, dtype=torch.long, device=device))

    def merge(self, rank: torch.Tensor, score: torch.Tensor, length: int, seq: torch.Tensor) -> _Pool:
        k = self.rank.shape[1]
        all_rank = torch.cat([self.rank, rank], dim=1)                 # (b, 2k)
        top, sel = all_rank.topk(k, dim=1)                              # sorted, best first
        all_len = torch.cat([self.length, torch.full_like(self.length, length)], dim=1)
        all_seq = torch.cat([self.seq, seq], dim=1)
        return _Pool(top, torch.cat([self.score, score], dim=1).gather(1, sel), all_len.gather(1, sel),
                     all_seq.gather(1, sel[:, :, None].expand(-1, -1, all_seq.shape[2])))

    def select(self, index: torch.Tensor) -> _Pool:
        return _Pool(self.rank[index], self.score[index], self.length[index], self.seq[index])

    def put(self, index: torch.Tensor, other: _Pool) -> None:
        self.rank[index], self.score[index], self.length[index], self.seq[index] = (
            other.rank, other.score, other.length, other.seq)


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the smallest set whose probability reaches top_p (rows of (R, V))."""
    sorted_p, order = probs.sort(dim=-1, descending=True)
    outside = (sorted_p.cumsum(dim=-1) - sorted_p) >= top_p            # mass before this token already enough
    sorted_p = sorted_p.masked_fill(outside, 0.0)
    return torch.zeros_like(probs).scatter_(-1, order, sorted_p)


@torch.inference_mode()
def sample(model: IRRALNet, encoded: Encoded, cfg: DecodeConfig,
           generator: torch.Generator | None = None) -> Hypotheses:
    """cfg.n_best sampled reports per study (see the module docstring), sorted by rank."""
    mc = model.cfg
    s = cfg.n_best
    n_studies = encoded.memory.shape[0]
    device = encoded.memory.device
    steps, eos = cfg.max_tokens + 1, mc.eos_id
    rules = _Constraints(model, cfg, device)
    rows = n_studies * s
    state = model.init_decode_state(encoded, group=s)
    tokens_in = torch.full((rows,), mc.bos_id, dtype=torch.long, device=device)
    seqs = torch.full((rows, steps), mc.pad_id, dtype=torch.long, device=device)
    score = torch.zeros(rows, device=device)
    length = torch.zeros(rows, dtype=torch.long, device=device)
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    for t in range(steps):
        logits, state = model.decode_step(tokens_in, state)
        logits = logits.float()
        logp = rules.apply(logits.log_softmax(dim=-1), seqs, t)
        allowed = logp > NEG_INF
        probs = (logits / cfg.temperature).masked_fill(~allowed, NEG_INF).softmax(dim=-1)
        # A row with nothing allowed (every token blocked) ends: its probabilities are NaN.
        empty = ~allowed.any(dim=-1)
        probs = probs.masked_fill(empty[:, None], 0.0)
        probs[:, eos] += empty.to(probs.dtype)
        if cfg.top_p < 1.0:
            probs = _nucleus(probs, cfg.top_p)
        tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        tok = tok.masked_fill(finished, mc.pad_id)
        score += logp.gather(1, tok[:, None]).squeeze(1).masked_fill(finished, 0.0)
        seqs[:, t] = tok
        length += (~finished).long()
        finished |= tok == eos
        tokens_in = tok
        if t + 1 < steps and (t + 1) % cfg.check_every == 0 and bool(finished.all()):
            break
    rank = score / length_penalty(length.float(), cfg.length_penalty)
    rank, order = rank.view(n_studies, s).sort(dim=1, descending=True, stable=True)  # (B, s)
    seqs = seqs.view(n_studies, s, steps).gather(1, order[:, :, None].expand(-1, -1, steps))
    return Hypotheses(seqs.cpu(), length.view(n_studies, s).gather(1, order).cpu(),
                      score.view(n_studies, s).gather(1, order).cpu(), rank.cpu())


def decode(model: IRRALNet, encoded: Encoded, cfg: DecodeConfig,
           generator: torch.Generator | None = None) -> Hypotheses:
    """Beam search, or sampling with cfg.sample, of the studies in `encoded` (cfg.max_tokens must be set)."""
    if cfg.max_tokens is None:
        raise ConfigError("decoding needs max_tokens (DecodeConfig.resolved fills the run's)")
    if cfg.max_tokens + 1 > model.embed.max_positions:
        raise ConfigError(f"--max-tokens {cfg.max_tokens} exceeds the model's {model.embed.max_positions - 1} positions")
    if cfg.sample:
        return sample(model, encoded, cfg, generator)
    return beam_search(model, encoded, cfg)
