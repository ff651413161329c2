"""Whole-corpus n-gram count tables shared by the BLEU and CIDEr-D scorers.

coco-caption cooks every sentence into a Python dict keyed by n-gram tuples and then walks those
dicts once per metric. Here every token is interned once, every distinct n-gram of each order gets
an integer id, and the counts of all texts live in three flat arrays per order (text, n-gram id,
count), so clipping, document frequencies and tf-idf vectors become a handful of numpy operations
over the whole scored set. Token boundaries are `str.split()` (any run of whitespace), exactly as
coco-caption's `precook` splits.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from irralctl.errors import InputError

MAX_ORDER = 4


@dataclass(frozen=True)
class NgramTable:
    """Counts of the n-grams of one order in every text; rows sorted by (text, gram)."""

    text: np.ndarray  # int64 (rows,): index of the text
    gram: np.ndarray  # int64 (rows,): n-gram id, 0 .. n_grams-1
    count: np.ndarray  # int64 (rows,): occurrences of that n-gram in that text
    n_grams: int  # distinct n-grams of this order over all texts


def count_ngrams(texts: Sequence[str], max_order: int = MAX_ORDER) -> tuple[np.ndarray, list[NgramTable]]:
    """Token counts per text and one `NgramTable` per order 1..max_order.

    N-gram ids are shared by all texts, so a hypothesis n-gram and a reference n-gram are equal
    exactly when their ids are. Each distinct text is counted once (generated reports and
    reference sets repeat whole texts), then its rows are copied for every text equal to it.
    """
    distinct = dict.fromkeys(texts)
    if len(distinct) == len(texts):
        return _count_distinct(texts, max_order)
    position = {t: i for i, t in enumerate(distinct)}
    which = np.fromiter(map(position.__getitem__, texts), dtype=np.int64, count=len(texts))  # (texts,)
    lengths, tables = _count_distinct(list(distinct), max_order)
    return lengths[which], [_expand(table, which) for table in tables]


def _expand(table: NgramTable, which: np.ndarray) -> NgramTable:
    """The rows of text `which[i]` of `table`, as rows of text i, for every i (still sorted)."""
    n_distinct = int(which.max()) + 1 if len(which) else 0
    first = np.searchsorted(table.text, np.arange(n_distinct + 1))  # row range of each distinct text
    size = (first[1:] - first[:-1])[which]                        # (texts,) rows per text
    out_start = np.cumsum(size) - size
    rows = np.arange(int(size.sum()), dtype=np.int64) + np.repeat(first[:-1][which] - out_start, size)
    return NgramTable(text=np.repeat(np.arange(len(which), dtype=np.int64), size), gram=table.gram[rows],
                      count=table.count[rows], n_grams=table.n_grams)


def _count_distinct(texts: Sequence[str], max_order: int) -> tuple[np.ndarray, list[NgramTable]]:
    words = [t.split() for t in texts]
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    tokens = list(itertools.chain.from_iterable(words))
    # Interning through C-level dict / map calls: the Python-level loop was half of the run time.
    index = {w: i for i, w in enumerate(dict.fromkeys(tokens))}
    tok = np.fromiter(map(index.__getitem__, tokens), dtype=np.int64, count=len(tokens))
    n_vocab = max(len(index), 1)
    text_of = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)  # (tokens,)
    starts = np.cumsum(lengths) - lengths
    remaining = lengths[text_of] - (np.arange(len(tok), dtype=np.int64) - starts[text_of])  # tokens left incl. this

    tables = []
    gram = tok  # ids of the (k-1)-grams starting at each position (valid where remaining >= k-1)
    n_grams = n_vocab
    for k in range(1, max_order + 1):
        pos = np.nonzero(remaining >= k)[0]
        if k > 1:
            # a k-gram is a (k-1)-gram followed by one token: pair ids, then renumber densely so
            # the next order's pairing stays far below int64 overflow.
            key = gram[pos] * n_vocab + tok[pos + k - 1]
            uniq, inv = np.unique(key, return_inverse=True)
            gram = np.empty_like(tok)
            gram[pos] = inv
            n_grams = max(len(uniq), 1)
        tk = text_of[pos] * n_grams + gram[pos]
        keys, counts = np.unique(tk, return_counts=True)
        tables.append(NgramTable(text=keys // n_grams, gram=keys % n_grams, count=counts.astype(np.int64), n_grams=n_grams))
    return lengths, tables


@dataclass(frozen=True)
class CookedPairs:
    """A scored set ready for BLEU and CIDEr-D: hypotheses and references counted together.

    Texts 0..n-1 are the hypotheses (one per item, in `ids` order); texts n.. are the references,
    `ref_item[j]` giving the item of reference j.
    """

    ids: list
    n_refs: np.ndarray  # int64 (items,): references per item
    ref_item: np.ndarray  # int64 (refs,)
    lengths: np.ndarray  # int64 (items + refs,): tokens per text
    tables: list[NgramTable]

    @property
    def n_items(self) -> int:
        return len(self.ids)


def check_pairs(gts: Mapping, res: Mapping) -> list:
    """Validate coco-caption's input shape (it asserts; we explain) and return the item order."""
    if not gts and not res:
        raise InputError("nothing to score: no items")
    if set(gts) != set(res):
        only_g = sorted(map(str, set(gts) - set(res)))[:5]
        only_r = sorted(map(str, set(res) - set(gts)))[:5]
        raise InputError(f"references and hypotheses have different ids (only in references: {only_g}, only in hypotheses: {only_r})")
    for key in gts:
        hyp, refs = res[key], gts[key]
        if not isinstance(hyp, list) or len(hyp) != 1 or not isinstance(hyp[0], str):
            raise InputError(f"item {key!r}: expected exactly one hypothesis string in a list")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs):
            raise InputError(f"item {key!r}: expected a non-empty list of reference strings")
    return list(gts)  # coco-caption iterates gts.keys()


def cook(gts: Mapping, res: Mapping) -> CookedPairs:
    ids = check_pairs(gts, res)
    hyps = [res[k][0] for k in ids]
    refs = [r for k in ids for r in gts[k]]
    n_refs = np.array([len(gts[k]) for k in ids], dtype=np.int64)
    ref_item = np.repeat(np.arange(len(ids), dtype=np.int64), n_refs)
    lengths, tables = count_ngrams(hyps + refs)
    return CookedPairs(ids=ids, n_refs=n_refs, ref_item=ref_item, lengths=lengths, tables=tables)
