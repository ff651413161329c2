"""IRRAL-Net: the whole model, and the interface decoders build on.

    images (B, V, S, S) uint8 --VisualEncoder--> V0 (B, N, d)                        Eq. 1
    C = sigmoid(ClinicalHead(V0))                             (ACL: 14 probabilities)
    x = V0 + Memory(V0)                                       (CMN, --memory)
    x = ACL(EncoderLayer_l(x), C) for l = 1..3                (Eq. 5, --acl)
    x = x + ClinicalContext(C)                                (ACL: C added to every token)
    tokens --embed--> e;  e = e + ClinicalContext(C)          (ACL with --ctx-words)
    e = e + Memory(e)                                         (CMN, --memory)
    logits = Decoder(e, x)
    Z_img = mean TextSpace(V0);  Z_txt = TextHead(T)          (MFA, Eq. 3-4)

* `forward(images, view_mask, tokens, text_features)` computes what the training losses need
  (teacher forcing): next-token logits, clinical logits, Z_img and Z_txt.
* `encode(images, view_mask) -> Encoded` and `teacher_force(encoded, tokens)` split the same
  computation for evaluation (the encoder output is shared with decoding).
* `init_decode_state(encoded, group)` and `decode_step(tokens_t, state) -> (logits, state)` run
  incremental decoding with a per-layer key/value cache; `DecodeState.reorder(beam_indices)`
  follows beam search. The decoders themselves (beam search, greedy as its width-1 case,
  sampling) live in `irralctl.generation.decoding`, the one place that turns logits into reports.

Special ids come from the config, and masks from sequence lengths, so the legacy tokeniser (BOS =
EOS = PAD = 0) and the BPE one (0, 1, 2) both work.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from irralctl.model.acl import ACLGate, ClinicalContext, ClinicalHead, masked_mean
from irralctl.model.config import ModelConfig
from irralctl.model.init import init_weights
from irralctl.model.memory import CrossModalMemory
from irralctl.model.mfa import TextHead, TextSpace
from irralctl.model.transformer import KV, DecoderLayer, EncoderLayer, TokenEmbedding
from irralctl.model.visual import TokenGrid, VisualEncoder, grid_size


@dataclass(frozen=True)
class Encoded:
    """The encoder's output for a batch of studies: what every decoder needs."""

    memory: torch.Tensor           # (B, N, d) encoder output: one token per cell of each view's grid
    memory_mask: torch.Tensor      # (B, N) bool, True for tokens of real views
    clinical_logits: torch.Tensor | None  # (B, n_observations) CheXpert logits from the image (ACL only)
    grid: TokenGrid                # visual token n < N <-> (view, row, column) of the views' grids
    z_img: torch.Tensor | None = None     # (B, d) the image in MFA's text space (MFA only)
    word_context: torch.Tensor | None = None  # (B, d) C added to every word embedding (ACL, --ctx-words)

    def index_select(self, index: torch.Tensor) -> Encoded:
        """Keep the studies `index` (B',) long, in that order."""
        pick = lambda t: None if t is None else t.index_select(0, index)  # noqa: E731
        return dataclasses.replace(self, memory=pick(self.memory), memory_mask=pick(self.memory_mask),
                                   clinical_logits=pick(self.clinical_logits), z_img=pick(self.z_img),
                                   word_context=pick(self.word_context))


@dataclass(frozen=True)
class ModelOutput:
    logits: torch.Tensor               # (B, T-1, vocab): predictions of tokens[:, 1:]
    clinical_logits: torch.Tensor | None  # (B, n_observations), with ACL
    z_img: torch.Tensor | None         # (B, d) pooled visual tokens in the text space (MFA)
    z_txt: torch.Tensor | None         # (B, d) E_txt of the reference report (MFA, training only)


@dataclass(frozen=True)
class DecodeState:
    """Incremental-decoding state. Rows are grouped: the `group` consecutive rows b*group .. b*group+group-1
    decode study b (the beams of a beam search; group 1 for greedy decoding).

    * `self_kv[l]`: layer l's self-attention K and V, each (B0*group, H, step, dh); None before step 0;
    * `cross_kv[l]`: layer l's cross-attention K and V of the encoder output, each (B0, H, N, dh),
      projected once and shared by the rows of a study (never copied per beam);
    * `cross_mask`: (B0, 1, 1, N) True for real visual tokens;
    * `memory_kv`: the memory matrix's K and V (H, S, dh), projected once (None without CMN);
    * `word_context`: (B0, 1, d) C added to every word embedding (ACL with --ctx-words), else None.
    """

    self_kv: tuple[KV, ...] | None
    cross_kv: tuple[KV, ...]
    cross_mask: torch.Tensor
    memory_kv: KV | None
    group: int
    step: int
    word_context: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.cross_mask.shape[0] * self.group

    def reorder(self, beam_indices: torch.Tensor) -> DecodeState:
        """Row r continues the history of row beam_indices[r] ((B0*group,) long).

        Indices must stay within each study's group of rows (what beam search produces): the shared
        cross-attention K/V are not reordered.
        """
        if self.self_kv is None:
            return self
        kv = tuple((k.index_select(0, beam_indices), v.index_select(0, beam_indices)) for k, v in self.self_kv)
        return dataclasses.replace(self, self_kv=kv)

    def select_studies(self, studies: torch.Tensor) -> DecodeState:
        """Keep only the studies `studies` ((B0',) long) and all their rows, e.g. to drop finished ones."""
        group = self.group
        rows = (studies[:, None] * group + torch.arange(group, device=studies.device)).flatten()
        self_kv = None if self.self_kv is None else tuple(
            (k.index_select(0, rows), v.index_select(0, rows)) for k, v in self.self_kv)
        cross = tuple((k.index_select(0, studies), v.index_select(0, studies)) for k, v in self.cross_kv)
        context = None if self.word_context is None else self.word_context.index_select(0, studies)
        return dataclasses.replace(self, self_kv=self_kv, cross_kv=cross, word_context=context,
                                   cross_mask=self.cross_mask.index_select(0, studies))


class IRRALNet(nn.Module):
    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        cfg.check_buildable()
        self.cfg = cfg
        d = cfg.d_model
        side = grid_size(cfg)
        self.grid = TokenGrid(cfg.views, side, side)
        self.visual = None if cfg.no_image else VisualEncoder(cfg)
        self.memory = (CrossModalMemory(d, cfg.memory_slots, cfg.memory_topk, cfg.n_heads, cfg.dropout)
                       if cfg.has_memory_matrix else None)
        # The clinical head and everything C drives belong to ACL (Eq. 5).
        self.clinical = ClinicalHead(d, cfg.n_observations, cfg.dropout, cfg.head_pooling) if cfg.acl else None
        self.gate = ACLGate(cfg.n_observations, d) if cfg.acl else None
        self.context = ClinicalContext(cfg.n_observations, d) if cfg.acl else None
        self.text_space = TextSpace(d) if cfg.has_text_space else None
        self.text_head = TextHead(cfg.text_dim, d) if cfg.mfa else None
        self.encoder_layers = nn.ModuleList(EncoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.enc_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.embed = TokenEmbedding(cfg.vocab_size, d, cfg.dropout, cfg.max_positions)
        self.decoder_layers = nn.ModuleList(DecoderLayer(d, cfg.n_heads, cfg.d_ff, cfg.dropout) for _ in range(cfg.dec_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, cfg.vocab_size)
        # Each module from its own generator: presets share every initial weight they have in common.
        init_weights(self, seed)

    def visual_parameters(self) -> list[nn.Parameter]:
        """The CNN's parameters (the paper's visual encoder learning rate applies to these)."""
        return [] if self.visual is None else list(self.visual.backbone.parameters())

    # -- encoding -----------------------------------------------------------------------------

    def _visual_tokens(self, images: torch.Tensor, view_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = images.shape[0]
        # A study without any real view keeps view 0 (a zero image) so no attention row is empty.
        view_mask = view_mask.clone()
        view_mask[:, 0] |= ~view_mask.any(dim=1)
        token_mask = view_mask.repeat_interleave(self.grid.height * self.grid.width, dim=1)  # (B, N)
        if self.visual is None:  # --no-image: the decoder sees constant features (the language prior)
            return images.new_zeros((b, self.grid.tokens, self.cfg.d_model), dtype=torch.float32), token_mask
        return self.visual(images, view_mask), token_mask

    def _encode(self, images: torch.Tensor, view_mask: torch.Tensor, memory_kv: KV | None,
                known_context: torch.Tensor | None = None) -> Encoded:
        v0, mask = self._visual_tokens(images, view_mask)                # (B, N, d), (B, N)
        clinical_logits = self.clinical(v0, mask) if self.clinical is not None else None  # (B, n_obs)
        x = v0 + self.memory(v0, memory_kv) if self.cfg.memory else v0
        alpha = probs = None
        if clinical_logits is not None:
            probs = torch.sigmoid(clinical_logits.detach().float())       # (B, n_obs): C, a fixed input
            if self.cfg.context_decisions:                                # the head's decisions, 0 or 1
                probs = (probs >= 0.5).float()
            if known_context is not None:                                 # training: some C from the labels
                probs = torch.where(known_context.isnan(), probs, known_context)
            alpha = self.gate(probs)                                      # (B, 1, d)
        attn_mask = mask[:, None, None, :]                                # (B, 1, 1, N)
        for layer in self.encoder_layers:
            x = layer(x, attn_mask)
            if alpha is not None:                                         # Eq. 5 after every layer
                x = ACLGate.fuse(x, self.text_space(x, self.memory, memory_kv), alpha)
        x = self.encoder_norm(x)
        word_context = None
        if probs is not None:                                             # C where the decoder reads
            context = self.context(probs)[:, None, :].to(x.dtype)        # (B, 1, d)
            x = x + context                                               # C on every visual token: (B, N, d)
            if self.cfg.context_words:
                word_context = context[:, 0]                              # and on every word: (B, d)
        z_img = None
        if self.cfg.mfa:
            z_img = masked_mean(self.text_space(v0, self.memory, memory_kv), mask[:, : v0.shape[1]])  # (B, d)
        return Encoded(x, mask, clinical_logits, self.grid, z_img, word_context)

    def _memory_kv(self) -> KV | None:
        return self.memory.keys_values() if self.memory is not None else None

    def encode(self, images: torch.Tensor, view_mask: torch.Tensor) -> Encoded:
        """images: (B, V, S, S) uint8 (normalised on their device); view_mask: (B, V) True for real views."""
        return self._encode(images, view_mask, self._memory_kv())

    # -- training -----------------------------------------------------------------------------

    def forward(self, images: torch.Tensor, view_mask: torch.Tensor, tokens: torch.Tensor,
                text_features: torch.Tensor | None = None, known_context: torch.Tensor | None = None) -> ModelOutput:
        """Teacher forcing. tokens: (B, T) BOS ... EOS, right-padded; text_features: (B, text_dim) the
        report's T; known_context: (B, n_obs) C taken from the labels where not NaN (ACL, training)."""
        memory_kv = self._memory_kv()
        encoded = self._encode(images, view_mask, memory_kv, known_context)
        logits = self.teacher_force(encoded, tokens, memory_kv)           # (B, T-1, vocab)
        z_txt = self.text_head(text_features) if self.cfg.mfa and text_features is not None else None  # (B, d)
        return ModelOutput(logits, encoded.clinical_logits, encoded.z_img, z_txt)

    def teacher_force(self, encoded: Encoded, tokens: torch.Tensor, memory_kv: KV | None = None) -> torch.Tensor:
        """Next-token logits (B, T-1, vocab) of tokens (B, T) given the encoder output."""
        if memory_kv is None and self.cfg.memory:
            memory_kv = self._memory_kv()
        x = self.embed(tokens[:, :-1])                                    # (B, T-1, d)
        if encoded.word_context is not None:
            x = x + encoded.word_context[:, None, :]                      # C on every word
        if self.cfg.memory:
            x = x + self.memory(x, memory_kv)
        cross_mask = encoded.memory_mask[:, None, None, :]                # (B, 1, 1, N)
        for layer in self.decoder_layers:
            x, _, _ = layer(x, layer.cross_attn.keys_values(encoded.memory), cross_mask)
        return self.lm_head(self.decoder_norm(x))                         # (B, T-1, vocab)

    # -- incremental decoding -----------------------------------------------------------------

    def init_decode_state(self, encoded: Encoded, group: int = 1) -> DecodeState:
        """State before the first token; `group` rows (beams) per study share its cross-attention K/V."""
        cross = tuple(layer.cross_attn.keys_values(encoded.memory) for layer in self.decoder_layers)
        return DecodeState(self_kv=None, cross_kv=cross, cross_mask=encoded.memory_mask[:, None, None, :],
                           memory_kv=self._memory_kv() if self.cfg.memory else None, group=group, step=0,
                           word_context=None if encoded.word_context is None else encoded.word_context[:, None, :])

    def decode_step(self, tokens_t: torch.Tensor, state: DecodeState, need_attention: bool = False
                    ) -> tuple[torch.Tensor, DecodeState] | tuple[torch.Tensor, DecodeState, tuple[torch.Tensor, ...]]:
        """One decoding step. tokens_t: (B0*group,) the previous token of every row (BOS at step 0).

        Returns (logits (B, vocab), new state), or with `need_attention` (logits, state, attention)
        where attention[l] is layer l's cross-attention weights (B, H, N) over the visual tokens.
        """
        x = self.embed(tokens_t[:, None], start=state.step)               # (B, 1, d)
        if state.word_context is not None:                                # (B0, 1, d) -> each study's rows
            x = x + state.word_context.repeat_interleave(state.group, dim=0)
        if self.cfg.memory:
            x = x + self.memory(x, state.memory_kv)
        caches, attention = [], []
        for i, layer in enumerate(self.decoder_layers):
            past = state.self_kv[i] if state.self_kv is not None else None
            x, kv, w = layer(x, state.cross_kv[i], state.cross_mask, past, state.group, need_attention)
            caches.append(kv)
            if need_attention:
                attention.append(w[:, :, 0])                              # (B, H, N)
        logits = self.lm_head(self.decoder_norm(x))[:, 0]                 # (B, vocab)
        new_state = dataclasses.replace(state, self_kv=tuple(caches), step=state.step + 1)
        return (logits, new_state, tuple(attention)) if need_attention else (logits, new_state)

    def banned_ids(self) -> list[int]:
        """Ids that are never a valid next token: PAD and BOS (unless they double as EOS), and the
        tokeniser's pieces that are not whole characters (`unspeakable`)."""
        cfg = self.cfg
        return sorted({i for i in (cfg.pad_id, cfg.bos_id, *cfg.unspeakable) if i != cfg.eos_id})


def build_model(cfg: ModelConfig, visual_weights: str | Path | None = None, seed: int = 0) -> IRRALNet:
    """The model for `cfg`, initialised from `seed`; `visual_weights` is a torchvision ResNet
    state_dict (ImageNet weights) loaded over the CNN's initial weights."""
    model = IRRALNet(cfg, seed)
    if visual_weights is not None and model.visual is not None:
        from irralctl.model.backbone import load_visual_weights

        load_visual_weights(model.visual.backbone, visual_weights)
    return model
