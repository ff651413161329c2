"""Report tokenisers, fitted on the train split and saved with the data.

Two kinds share one small interface (`encode`, `decode`, `vocab_size`, special ids):

* `BPETokenizer`: byte-level BPE from HF `tokenizers` (lossless on any cleaned text), the paper's
  setting. Special ids are fixed: `[PAD]`=0, `[BOS]`=1, `[EOS]`=2, `[UNK]`=3.
* `LegacyTokenizer`: R2Gen's word vocabulary, for exact comparability with published tables:
  the tokens of the cleaned train reports whose count reaches the threshold, plus `<unk>`, sorted,
  numbered from 1; id 0 is BOS, EOS and padding at once (as in R2Gen, so the output layer has
  len(vocab) + 1 classes). Decoding stops at the first 0.

Either is saved as one JSON file and copied into every run directory, so a checkpoint never
depends on rebuilding a vocabulary from the annotation file (the anchors' size-mismatch bug).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from irralctl.errors import InputError
from irralctl.utils.io import atomic_write


class ReportTokenizer(Protocol):
    kind: str
    pad_id: int
    bos_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def unspeakable_ids(self) -> list[int]: ...
    def id_to_token(self, i: int) -> str: ...
    def save(self, path: str | Path) -> None: ...
    def to_json(self) -> str: ...


class LegacyTokenizer:
    kind = "legacy"
    pad_id = bos_id = eos_id = 0

    def __init__(self, token2idx: dict[str, int], threshold: int):
        self.token2idx = dict(token2idx)
        self.idx2token = {i: t for t, i in token2idx.items()}
        self.threshold = threshold
        self.unk_id = self.token2idx["<unk>"]
        self.vocab_size = len(self.token2idx) + 1  # + the shared BOS/EOS/PAD id 0

    @classmethod
    def fit(cls, texts: Iterable[str], threshold: int) -> LegacyTokenizer:
        counts = Counter(tok for text in texts for tok in text.split())
        vocab = sorted([t for t, c in counts.items() if c >= threshold] + ["<unk>"])
        return cls({t: i + 1 for i, t in enumerate(vocab)}, threshold)

    def encode(self, text: str) -> list[int]:
        get, unk = self.token2idx.get, self.unk_id
        return [get(t, unk) for t in text.split()]

    def decode(self, ids: Sequence[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == 0:
                break
            out.append(self.idx2token.get(i, "<unk>"))
        return " ".join(out)

    def id_to_token(self, i: int) -> str:
        return self.idx2token.get(int(i), "<unk>")

    def unspeakable_ids(self) -> list[int]:
        return []  # every token is a whole word

    def to_json(self) -> str:
        return json.dumps({"kind": "legacy", "threshold": self.threshold, "token2idx": self.token2idx},
                          ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        with atomic_write(path) as f:
            f.write(self.to_json())


class BPETokenizer:
    kind = "bpe"
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")

    def __init__(self, tokenizer):
        self._tok = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()

    @classmethod
    def fit(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(cls.SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(list(texts), trainer=trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        ids = [i for i in ids if i > self.unk_id]
        return self._tok.decode(ids).strip()

    def id_to_token(self, i: int) -> str:
        """The token's byte-level piece (a leading space shows as 'Ġ')."""
        return self._tok.id_to_token(int(i))

    def unspeakable_ids(self) -> list[int]:
        """Ids whose bytes are not whole UTF-8 characters on their own (a lone byte of a multi-byte
        character): a decoder that emitted one would print U+FFFD. Generation never chooses them,
        so every report is made of whole characters."""
        return [i for i in range(self.unk_id + 1, self.vocab_size) if "\ufffd" in self._tok.decode([i])]

    def to_json(self) -> str:
        return self._tok.to_str()

    def save(self, path: str | Path) -> None:
        with atomic_write(path) as f:
            f.write(self.to_json())


def tokenizer_from_json(text: str, source: str | Path = "<tokenizer>") -> ReportTokenizer:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"tokeniser file is not valid JSON ({e.msg})", path=source) from None
    if obj.get("kind") == "legacy":
        return LegacyTokenizer(obj["token2idx"], obj["threshold"])
    from tokenizers import Tokenizer

    try:
        return BPETokenizer(Tokenizer.from_str(text))
    except Exception as e:
        raise InputError(f"not a tokeniser file ({e})", path=source) from None


def load_tokenizer(path: str | Path) -> ReportTokenizer:
    path = Path(path)
    if not path.is_file():
        raise InputError("tokeniser file not found", path=path)
    return tokenizer_from_json(path.read_text(encoding="utf-8"), path)
