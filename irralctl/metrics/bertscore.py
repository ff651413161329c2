"""BERTScore (Zhang et al., "BERTScore: Evaluating Text Generation with BERT", ICLR 2020), offline.

Each text is embedded token by token by a BERT-family encoder (one hidden layer); with x the
reference's token vectors and x^ the candidate's, L2-normalised (Sec. 3, "Similarity measure"):

    R = sum_{x_i in x}  w(x_i) max_{x^_j in x^} x_i . x^_j  /  sum_{x_i in x}  w(x_i)
    P = sum_{x^_j in x^} w(x^_j) max_{x_i in x} x_i . x^_j  /  sum_{x^_j in x^} w(x^_j)
    F1 = 2 P R / (P + R)

("greedy matching", Eq. 1-3 of the paper). w = 1 by default; with `idf` (Eq. 4) w(t) = log((M + 1)
/ (df(t) + 1)), M the number of references and df(t) how many of them hold token t. As in the
authors' `bert-score` package, the [CLS] and [SEP] vectors take part in the matching but weigh 0;
a pair where either text has no token of positive weight (an empty report; with idf, one made only
of tokens every reference holds) scores 0 (the package gives NaN or a partial score, with a warning). Baseline rescaling
(Sec. 3, "Baseline rescaling") is off unless baselines are given: s' = (s - b) / (1 - b).
Corpus figures are the means over studies, so the bootstrap resamples them like ROUGE-L.

Written here rather than taken from `bert-score`, which resolves models by Hub name (a download)
and pins the layer per known model: any local model folder works, nothing is fetched, and the
layer is an option (default: the last hidden layer; bert-score's defaults differ per model, so
its numbers are comparable with these only at the same model, layer, idf and rescaling).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from irralctl.errors import ConfigError, InputError

NAMES = ("bertscore_p", "bertscore_r", "bertscore_f1")


def greedy_match(cand: torch.Tensor, ref: torch.Tensor, cand_w: torch.Tensor,
                 ref_w: torch.Tensor) -> tuple[float, float, float]:
    """(P, R, F1) of one pair: cand (m, d), ref (n, d) token vectors; cand_w (m,), ref_w (n,) weights."""
    if not float(cand_w.sum()) > 0 or not float(ref_w.sum()) > 0:
        return 0.0, 0.0, 0.0  # an empty text (only [CLS] and [SEP], or idf 0 everywhere) matches nothing
    cand = torch.nn.functional.normalize(cand.double(), dim=-1)
    ref = torch.nn.functional.normalize(ref.double(), dim=-1)
    sim = cand @ ref.T                                    # (m, n) cosine of every token pair
    p = _weighted(sim.max(dim=1).values, cand_w.double())  # each candidate token's best reference match
    r = _weighted(sim.max(dim=0).values, ref_w.double())   # each reference token's best candidate match
    f = 2 * p * r / (p + r) if p + r != 0 else 0.0
    return p, r, f


def _weighted(best: torch.Tensor, w: torch.Tensor) -> float:
    total = float(w.sum())
    return float((best * w).sum()) / total if total > 0 else 0.0


def idf_weights(references: Sequence[Sequence[int]]) -> defaultdict[int, float]:
    """Token id -> log((M + 1) / (df + 1)) over M references (Eq. 4, with the package's +1 smoothing;
    a token no reference holds gets log(M + 1), as there)."""
    df: dict[int, int] = {}
    for ids in references:
        for t in set(ids):
            df[t] = df.get(t, 0) + 1
    m = len(references)
    unseen = math.log(m + 1)
    return defaultdict(lambda: unseen, {t: math.log((m + 1) / (n + 1)) for t, n in df.items()})


def rescale(values: np.ndarray, baseline: float) -> np.ndarray:
    """Baseline rescaling: (s - b) / (1 - b)."""
    return (values - baseline) / (1 - baseline)


class BERTScorer:
    """Token embeddings of a local Hugging Face encoder, and BERTScore from them."""

    def __init__(self, model_dir: str | Path | None = None, *, layer: int | None = None, batch_size: int = 64,
                 device: str = "auto"):
        from irralctl.model.text_encoder import default_text_encoder_path
        from irralctl.runs.device import resolve_device

        path = Path(model_dir) if model_dir is not None else default_text_encoder_path()
        if not path.is_dir():
            raise InputError("BERTScore model folder not found", path=path,
                             hint="give a local Hugging Face model folder (config.json, weights, tokenizer)")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import transformers
        from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except Exception as e:  # transformers raises many types for a bad folder
            raise InputError(f"cannot load a BERTScore model from this folder ({type(e).__name__}: {e})", path=path,
                             hint="it must hold a Hugging Face model: config.json, weights, tokenizer") from None
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0) or 0)
        if layer is not None and not 0 <= layer <= n_layers:
            raise ConfigError(f"--bertscore-layer {layer}: this model has layers 0 (embeddings) to {n_layers}")
        self.path, self.layer, self.n_layers = path, n_layers if layer is None else layer, n_layers
        self.device = resolve_device(device)
        self.model = self.model.to(self.device).eval()
        self.batch_size = batch_size
        limits = [v for v in (getattr(self.tokenizer, "model_max_length", None),
                              getattr(self.model.config, "max_position_embeddings", None)) if v and v < 1_000_000]
        self.max_length = min(limits) if limits else 512
        self.special = {t for t in (self.tokenizer.cls_token_id, self.tokenizer.sep_token_id) if t is not None}

    def describe(self) -> dict:
        return {"model": str(self.path), "name": getattr(self.model.config, "_name_or_path", None),
                "layer": self.layer, "layers": self.n_layers}

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"] for t in texts]

    @torch.inference_mode()
    def embed(self, ids: Sequence[list[int]]) -> list[torch.Tensor]:
        """(length, hidden) vectors of layer `self.layer` for each token-id list (specials included)."""
        out: list[torch.Tensor | None] = [None] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch: less padding
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            states = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                output_hidden_states=True).hidden_states[self.layer]   # (B, width, hidden)
            for row, i in enumerate(batch):
                out[i] = states[row, :len(ids[i])].float().cpu()
        return out  # type: ignore[return-value]

    def weights(self, ids: list[int], idf: dict[int, float] | None) -> torch.Tensor:
        return torch.tensor([0.0 if t in self.special else (1.0 if idf is None else idf[t]) for t in ids],
                            dtype=torch.float64)

    def score(self, candidates: Sequence[str], references: Sequence[str], *, idf: bool = False,
              baseline: Sequence[float] = ()) -> dict[str, np.ndarray]:
        """Per-study P, R and F1 (`NAMES`) of each candidate against its reference."""
        if len(candidates) != len(references):
            raise ValueError("one reference per candidate")
        cand_ids, ref_ids = self.token_ids(candidates), self.token_ids(references)
        weights = idf_weights(ref_ids) if idf else None
        vectors = self.embed([*cand_ids, *ref_ids])
        n = len(candidates)
        prf = np.array([greedy_match(vectors[k], vectors[n + k], self.weights(cand_ids[k], weights),
                                     self.weights(ref_ids[k], weights)) for k in range(n)]).reshape(n, 3)
        out = {name: prf[:, j] for j, name in enumerate(NAMES)}
        if baseline:
            out = {name: rescale(out[name], b) for name, b in zip(NAMES, baseline)}
        return out
