"""Report tokenisers: BPE and R2Gen's word vocabulary, saved as JSON and read back unchanged."""

from __future__ import annotations

import json

import pytest

from irralctl.data.tokenizers import BPETokenizer, LegacyTokenizer, load_tokenizer, tokenizer_from_json
from irralctl.errors import InputError

TRAIN = [
    "the heart is normal in size . the lungs are clear .",
    "there is a small left pleural effusion . the heart is enlarged .",
    "no focal consolidation , pneumothorax or pleural effusion .",
    "mild cardiomegaly . the lungs are clear . no pneumothorax .",
    "the mediastinum is unremarkable . degenerative changes of the thoracic spine .",
] * 4


def test_bpe_round_trips_cleaned_text_and_keeps_its_special_ids():
    tok = BPETokenizer.fit(TRAIN, 300)
    assert (tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (0, 1, 2, 3)
    for text in TRAIN[:5] + ["a 4.5 cm nodule , unlike before .", "the heart is normal in size"]:
        ids = tok.encode(text)
        assert all(i > tok.unk_id for i in ids)
        assert tok.decode(ids) == text
    ids = tok.encode("the heart is normal .")
    assert tok.decode([*ids, tok.eos_id, *tok.encode("ignored after eos")]) == "the heart is normal ."
    assert tok.decode([tok.pad_id, tok.bos_id, *ids]) == "the heart is normal ."


def test_bpe_is_saved_and_read_back_unchanged(tmp_path):
    tok = BPETokenizer.fit(TRAIN, 300)
    tok.save(tmp_path / "bpe.json")
    again = load_tokenizer(tmp_path / "bpe.json")
    assert again.to_json() == tok.to_json() and again.vocab_size == tok.vocab_size
    assert again.encode(TRAIN[1]) == tok.encode(TRAIN[1])


def test_legacy_vocabulary_is_r2gens():
    texts = ["a b c a", "a b d", "a e"]
    tok = LegacyTokenizer.fit(texts, threshold=2)
    # words counted on train, kept from the threshold on, plus <unk>, sorted, numbered from 1
    assert tok.token2idx == {"<unk>": 1, "a": 2, "b": 3}
    assert tok.vocab_size == 4 and tok.pad_id == tok.bos_id == tok.eos_id == 0
    assert tok.encode("a c b unseen") == [2, 1, 3, 1]          # unknown words are <unk>
    assert tok.decode([2, 1, 3, 0, 2]) == "a <unk> b"          # decoding stops at the shared 0
    assert tok.id_to_token(3) == "b" and tok.id_to_token(99) == "<unk>"
    again = tokenizer_from_json(tok.to_json())
    assert isinstance(again, LegacyTokenizer) and again.token2idx == tok.token2idx and again.threshold == 2


def test_unreadable_tokeniser_files_are_named(tmp_path):
    with pytest.raises(InputError, match="tokeniser file not found"):
        load_tokenizer(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_tokenizer(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"kind": "something"}))
    with pytest.raises(InputError, match="not a tokeniser file"):
        load_tokenizer(tmp_path / "other.json")
