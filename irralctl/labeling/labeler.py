"""The 14 CheXpert observations of a free-text chest X-ray report, without a parser.

Pipeline, as the Stanford CheXpert labeler (Irvin et al., AAAI 2019) runs it:
1. clean the text and split sentences (`_text`);
2. mention extraction: every phrase of the packaged mention lists (regular expressions, "_" for
   a space) matched as a substring in every sentence; a match overlapping an unmention phrase of
   the same observation is dropped (e.g. "pericardial effusion", "calcified nodule", and the
   generated "over the heart", "in the left cardiac silhouette", ...);
3. each mention classified: uncertainty that must win over negation ("cannot exclude", "no
   new"), else negation, else uncertainty, else positive; the original asks NegBio's dependency
   rules, we ask scoped trigger rules (`_rules`);
4. aggregation per report: several mentions of one observation combine as the original does
   (positive beats uncertain beats negative, except that a negative together with an uncertain
   gives uncertain even when a positive is present too); a positive or uncertain "chf" / "heart
   failure" adds an uncertain Cardiomegaly; No Finding is 1 unless some mention other than Support
   Devices (the "No Finding" list of other findings included) is positive or uncertain.

Labeler 1.1 adds, without changing the original lists (`chexpert/`), irralctl's own phrase lists
(`additions/`: devices, pleural findings, pneumonitis, ... and words that only look like a
phrase) and two checks after classification (`_rules`): a mediastinal structure with no size
word near it is no Enlarged Cardiomediastinum, and a nodule or opacity put down to granulomas is
no Lung Lesion or Lung Opacity.

No Finding follows one of two policies (`Labeler(no_finding=...)`): "chexpert" is the original's
rule above; "incidental" (the default) lets the other findings named in `additions/incidental.txt`
(degenerative change, granulomas, aortic atherosclerosis, scoliosis, ...) keep No Finding, since a
reader calls such a study normal; the other findings of the list still blank it.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources

from irralctl.constants import (
    NEGATIVE,
    NO_FINDING_POLICIES,
    OBSERVATIONS,
    POSITIVE,
    UNCERTAIN,
)
from irralctl.errors import ConfigError
from irralctl.labeling import _rules as R
from irralctl.labeling._text import clean, split_sentences, tokenize

log = logging.getLogger(__name__)

LABELER_NAME = "irralctl-chexpert"
# Bump on any change of rules or phrase lists: prepared datasets record it beside their labels.
LABELER_VERSION = "1.1.0"
NO_FINDING, ENLARGED_CM, CARDIOMEGALY, LUNG_LESION, LUNG_OPACITY = 0, 1, 2, 3, 4
SUPPORT_DEVICES = 13

# The phrase files are named after the observation ("lung_opacity.txt" -> "Lung Opacity").
_STEMS = tuple(name.lower().replace(" ", "_") for name in OBSERVATIONS)
_PHRASE_ROOT = "chexpert"
_ADDED_ROOT = "additions"    # irralctl's own phrases, kept apart from the original lists
_ADDED = " (phrase added by irralctl)"
_INCIDENTAL_FILE = "incidental.txt"   # in _ADDED_ROOT: other findings that keep No Finding
_REGEX_CHARS = frozenset(".^$*+?{}[]\\|()")
# The original's generated unmentions: a cardiac phrase after one of these is a position.
_POSITIONS = tuple(a + b for a in ("over the", "overly the", "in the") for b in ("", " superior", " left", " right"))
_CHF_TEXTS = frozenset({"chf", "heart failure"})
_VALUE_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}
# Which trigger lists a rule of each kind joins (see _rules.TRIGGERS).
_ROLES: dict[str, tuple[str, ...]] = {
    "pnu_pre": ("pnu_pre",), "pnu_post": ("pnu_post",), "pnu_bi": ("pnu_pre", "pnu_post"),
    "neg_pre": ("neg_pre",), "neg_post": ("neg_post",), "neg_bi": ("neg_pre", "neg_post"),
    "neg_norm": ("neg_post", "neg_adj"), "neg_adj": ("neg_adj",),
    "unc_pre": ("unc_pre",), "unc_post": ("unc_post",), "unc_bi": ("unc_pre", "unc_post"),
    "unc_adj": ("unc_adj",), "unc_size": ("unc_post", "unc_adj"),
    "anat_pre": ("anat_pre",), "anat_post": ("anat_post",), "anat_bi": ("anat_pre", "anat_post"),
    "conj": ("conj",), "pseudo": (),
}
_LISTS = sorted({name for names in _ROLES.values() for name in names})
# Distinct sentences remembered by one Labeler (see `_analyse`); beyond, it starts afresh.
_SENTENCE_CACHE_SIZE = 100_000
_NOTHING: tuple = ((), ())


@dataclass(frozen=True)
class _Phrase:
    """One mention or unmention phrase; literal phrases are found with str.find (much faster)."""

    text: str
    pattern: re.Pattern | None
    key: str  # a literal part every match contains ("" for a regex without one)
    added: bool = False  # from irralctl's additions, not from the original lists

    @classmethod
    def build(cls, text: str, added: bool = False) -> _Phrase:
        literal = not (set(text) & _REGEX_CHARS)
        return cls(text, None if literal else re.compile(text), text if literal else _required_literal(text), added)

    def spans(self, doc: str) -> list[tuple[int, int]]:
        """Non-overlapping leftmost matches, as re.finditer gives them."""
        if self.pattern is not None:
            return [m.span() for m in self.pattern.finditer(doc) if m.end() > m.start()]
        out, n = [], len(self.text)
        i = doc.find(self.text)
        while i != -1:
            out.append((i, i + n))
            i = doc.find(self.text, i + n)
        return out


def _literal_index(entries: tuple) -> tuple[re.Pattern, dict[str, tuple], tuple]:
    """For `Labeler._candidates`: a pattern finding, at every position, the longest literal part
    (`_Phrase.key`) of any phrase starting there; for each literal part, the phrases (index,
    observation, phrase) whose literal part lies inside it (itself included); and the phrases
    without a literal part, which are always candidates."""
    keys = sorted({phrase.key for _, _, phrase in entries if phrase.key})
    trie: dict = {}
    for key in keys:
        node = trie
        for ch in key:
            node = node.setdefault(ch, {})
        node[""] = {}  # a literal part ends here

    def alternatives(node: dict) -> str:
        # Branches start with distinct characters, so the regex engine rejects all but one on its
        # first character; a greedy `?` after a complete literal part prefers the longer one.
        branches = [re.escape(ch) + alternatives(node[ch]) for ch in sorted(c for c in node if c)]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:
            return f"(?:{body})?" if len(branches) == 1 else body + "?"
        return body

    pattern = re.compile("(?=(" + alternatives(trie) + "))")
    inside = {key: tuple(e for e in entries if e[2].key and e[2].key in key) for key in keys}
    return pattern, inside, tuple(e for e in entries if not e[2].key)


def _required_literal(pattern: str) -> str:
    """The longest run of plain characters that every match of `pattern` contains ("" if none of
    3 characters or more): characters outside groups and classes, not made optional by a quantifier.
    A cheap substring test on it spares running the regex on most reports."""
    runs, run, depth, i = [], "", 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            runs.append(run)
            run, i = "", i + 2
            continue
        if c in "([":
            runs.append(run)
            run = ""
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c == "|":
            return ""                       # alternatives at the top: nothing is required
        elif depth == 0 and c in "?*{":
            runs.append(run[:-1])
            run = ""
            if c == "{":                    # skip the repeat count
                i = pattern.index("}", i)
        elif depth == 0 and c not in _REGEX_CHARS:
            run += c
        else:
            runs.append(run)
            run = ""
        i += 1
    runs.append(run)
    best = max(runs, key=len)
    return best if len(best) >= 3 else ""


@dataclass(frozen=True)
class Mention:
    """One classified mention: observation index, span in the sentence-split text, value, why."""

    observation: int
    start: int
    end: int
    text: str
    value: int
    rule: str


@dataclass(frozen=True)
class _Trigger:
    first: int  # token indices, inclusive
    last: int
    text: str


def _read_phrases(kind: str, folder: str = _PHRASE_ROOT) -> dict[int, list[str]]:
    """Phrase lists of one kind ("mention" / "unmention"), as the original loads them.

    `folder` is the original lists ("chexpert") or irralctl's additions ("additions"), whose
    lines starting with "#" are comments (the original lists have none).
    """
    root = resources.files(__package__) / folder / kind
    out: dict[int, list[str]] = {}
    for index, stem in enumerate(_STEMS):
        f = root / f"{stem}.txt"
        if not f.is_file():
            continue
        # The original strips each line, then turns "_" into a space (so "_mediastinum" keeps
        # its leading space); it would keep a blank line as an empty phrase that matches
        # everywhere, which we skip (the shipped lists have none).
        phrases = [line.strip().replace("_", " ") for line in f.read_text(encoding="utf-8").splitlines()]
        out[index] = [p for p in phrases if p and not (folder == _ADDED_ROOT and p.startswith("#"))]
    return out


def _read_incidental(other_findings: Iterable[str]) -> frozenset[str]:
    """The other-finding phrases of `additions/incidental.txt`, each checked to be one of
    `other_findings` (a line that is none would silently do nothing)."""
    f = resources.files(__package__) / _ADDED_ROOT / _INCIDENTAL_FILE
    lines = (line.strip() for line in f.read_text(encoding="utf-8").splitlines())
    phrases = frozenset(p.replace("_", " ") for p in lines if p and not p.startswith("#"))
    unknown = sorted(phrases - set(other_findings))
    if unknown:
        raise ValueError(f"{_ADDED_ROOT}/{_INCIDENTAL_FILE}: not phrases of the other-findings lists: {unknown}")
    return phrases


class Labeler:
    """CheXpert observations of radiology reports: `label(text)` gives 14 values (1, 0, -1, None).

    `no_finding`: "incidental" (default) or "chexpert", how findings outside the 13 decide No
    Finding (see the module docstring). Build once and reuse: construction loads the packaged
    phrase lists and compiles every rule. The only state that changes is a cache of analysed
    sentences (a dict whose entries are immutable once stored), so one may be shared between threads.
    """

    def __init__(self, no_finding: str = NO_FINDING_POLICIES[0]) -> None:
        if no_finding not in NO_FINDING_POLICIES:
            raise ConfigError(f"no_finding must be one of {', '.join(NO_FINDING_POLICIES)}, not {no_finding!r}")
        self.no_finding = no_finding
        mentions = _read_phrases("mention")
        unmentions = _read_phrases("unmention")
        # The original replaces the (absent) file lists of the two cardiac observations with
        # generated positional phrases; its quirks are kept: "the " is removed from Cardiomegaly
        # phrases only, and " mediastinum" yields "over the  mediastinum" (two spaces, which
        # never matches a cleaned report).
        unmentions[CARDIOMEGALY] = [
            f"{pos} {p.replace('the ', '')}" for pos in _POSITIONS for p in mentions[CARDIOMEGALY]
            if p not in ("cardiomegaly", "cardiac enlargement")
        ]
        unmentions[ENLARGED_CM] = [f"{pos} {p}" for pos in _POSITIONS for p in mentions[ENLARGED_CM]]
        self._mentions = tuple(
            (obs, _Phrase.build(p)) for obs in sorted(mentions) for p in mentions[obs]
        )
        self._unmentions = {obs: tuple(_Phrase.build(p) for p in ps) for obs, ps in unmentions.items()}
        # irralctl's additions: searched with the originals, reported as added by `explain`.
        added = _read_phrases("mention", _ADDED_ROOT)
        self._added_mentions = tuple(
            (obs, _Phrase.build(p, added=True)) for obs in sorted(added) for p in added[obs]
        )
        self._added_unmentions = {
            obs: tuple(_Phrase.build(p, added=True) for p in ps)
            for obs, ps in _read_phrases("unmention", _ADDED_ROOT).items()
        }
        self._all_mentions = self._mentions + self._added_mentions
        self._indexed_mentions = tuple((i, obs, p) for i, (obs, p) in enumerate(self._all_mentions))
        self._keys, self._inside, self._unanchored = _literal_index(self._indexed_mentions)
        # Analysed sentences (see `_analyse`): text -> immutable result, never changed once stored.
        self._sentence_cache: dict[str, tuple] = {}
        # Read (and checked) under both policies; only "incidental" uses it. Every phrase of the
        # other-findings lists is a literal, so a mention's text is its phrase.
        incidental = _read_incidental(p.text for obs, p in self._all_mentions if obs == NO_FINDING)
        self._incidental = incidental if no_finding == "incidental" else frozenset()
        self._stops = {obs: self._unmentions.get(obs, ()) + self._added_unmentions.get(obs, ())
                       for obs in set(self._unmentions) | set(self._added_unmentions)}
        self._anatomic = R.ANATOMIC_PHRASES
        # Triggers indexed by their first word: a report is scanned token by token and only the
        # few rules starting with that token are tried (one big alternation is ten times slower).
        dispatch: dict[str, list[tuple[tuple[str, ...], re.Pattern | None, bool]]] = {}
        for kind, words, rest, after_be in R.TRIGGERS:
            pattern = re.compile(rest + r"(?![a-z0-9])") if rest else None
            for w in words:
                dispatch.setdefault(w, []).append((_ROLES[kind], pattern, after_be))
        self._dispatch = dispatch
        self._be_words = R.BE_WORDS
        self._enlarged_before = R.ENLARGED_BEFORE
        self._hard_phrases = R.HARD_PHRASES
        self._comma_clause = R.COMMA_CLAUSE_RE
        self._comma_pred = R.COMMA_PRED_RE
        # Per-word scope flags, looked up once per token.
        flags: dict[str, int] = {}
        for w in R.HARD_PUNCT | R.HARD_WORDS:
            flags[w] = flags.get(w, 0) | R.HARD
        for w in R.CLAUSE_WORDS:
            flags[w] = flags.get(w, 0) | R.CLAUSE
        for w in R.PRED_WORDS | R.FRAME_VERBS:
            flags[w] = flags.get(w, 0) | R.PRED
        for w in R.NEG_WORDS:
            flags[w] = flags.get(w, 0) | R.NEGWORD
        for w in R.MODAL_WORDS:
            flags[w] = flags.get(w, 0) | R.MODAL
        flags[","] = flags.get(",", 0) | R.COMMA
        flags["and"] = flags.get("and", 0) | R.AND
        for w in R.TRANSPARENT_WORDS:
            flags[w] = flags.get(w, 0) | R.TRANSPARENT
        self._word_flags = flags

    # --- public API -------------------------------------------------------------------------
    def info(self) -> dict:
        """What to record beside labels: name, version and No Finding policy."""
        return {"name": LABELER_NAME, "version": LABELER_VERSION, "no_finding": self.no_finding}

    def label(self, text: str) -> list[int | None]:
        """The 14 observations of one report: 1 positive, 0 negative, -1 uncertain, None absent."""
        return _aggregate(self.mentions(text), self._incidental)[0]

    def label_many(self, texts: Iterable[str]) -> list[list[int | None]]:
        return [self.label(t) for t in texts]

    def explain(self, text: str) -> list[dict]:
        """Per observation: name, value, and the phrase, sentence and rule that decided it."""
        doc, mentions, dropped = self._analyse(text)
        values, lists = _aggregate(mentions, self._incidental)
        out = []
        for index, name in enumerate(OBSERVATIONS):
            value = values[index]
            item = {"name": name, "value": value, "phrase": None, "sentence": None, "rule": "not mentioned"}
            if index == NO_FINDING:
                _explain_no_finding(item, doc, mentions, self._incidental)
            elif lists[index]:
                _explain_combined(item, doc, lists[index])
            elif index in dropped:
                # A phrase was found but names no finding: say which and why, for the audit.
                obs_start, obs_end, reason = dropped[index]
                item.update(phrase=doc[obs_start:obs_end], sentence=_sentence_at(doc, obs_start, obs_end),
                            rule=f"not mentioned: {reason}")
            out.append(item)
        return out

    def mentions(self, text: str) -> list[Mention]:
        """Every classified mention of a report (the material `label` aggregates)."""
        return self._analyse(text)[1]

    # --- pipeline ---------------------------------------------------------------------------
    def _analyse(self, text: str) -> tuple[str, list[Mention], dict[int, tuple[int, int, str]]]:
        """(sentence-split text, classified mentions, {observation: (start, end, why)} of the
        first phrase per observation that the checks after classification set aside).

        Every step is local to a sentence (phrases never span a line, and every scope stops at
        the period that ends one), so each distinct sentence is analysed once per Labeler and
        the report assembled from its sentences: reports repeat sentences far more than they
        repeat whole ("the lungs are clear ."), which makes labelling a corpus several times
        faster. Mentions come back in the order a whole-report search finds them (phrase list
        order, then position), which `explain` relies on.
        """
        doc = split_sentences(clean(_capped(text)))
        cache = self._sentence_cache
        mentions: list[tuple[int, int, Mention]] = []
        set_aside: list[tuple[int, int, int, int, str]] = []
        offset = 0
        for sentence in doc.split("\n"):
            result = cache.get(sentence)
            if result is None:
                result = self._analyse_sentence(sentence, self._candidates(sentence))
                if len(cache) >= _SENTENCE_CACHE_SIZE:
                    cache.clear()  # bounded memory over any number of reports
                cache[sentence] = result
            found, dropped = result
            if offset:
                mentions += [(index, m.start + offset,
                              Mention(m.observation, m.start + offset, m.end + offset, m.text, m.value, m.rule))
                             for index, m in found]
                set_aside += [(index, start + offset, obs, end + offset, why) for index, start, obs, end, why in dropped]
            else:
                mentions += [(index, m.start, m) for index, m in found]
                set_aside += dropped
            offset += len(sentence) + 1
        if len(mentions) > 1:
            mentions.sort(key=lambda row: (row[0], row[1]))
        out_dropped: dict[int, tuple[int, int, str]] = {}
        for _, start, obs, end, why in sorted(set_aside):
            out_dropped.setdefault(obs, (start, end, why))
        return doc, [m for _, _, m in mentions], out_dropped

    def _candidates(self, doc: str) -> list[tuple[int, int, _Phrase]]:
        """The mention phrases whose literal part occurs in `doc` (in no particular order).

        Most phrases are absent from any one sentence. One regular expression, the literal parts
        of all phrases as a trie, finds at every position the longest literal part starting
        there; the phrases whose literal part lies inside one found are the candidates (a
        substring test per phrase, some 200 of them, cost twice as much)."""
        found = set(self._keys.findall(doc))
        if len(found) == 1:
            return [*self._unanchored, *self._inside[found.pop()]]
        picked = {entry[0]: entry for key in found for entry in self._inside[key]}  # each phrase once
        return [*self._unanchored, *picked.values()]

    def _analyse_sentence(self, doc: str, candidates) -> tuple[tuple[tuple[int, Mention], ...],
                                                               tuple[tuple[int, int, int, int, str], ...]]:
        """The mentions of one sentence, each with the index of its phrase, and the phrases set
        aside (index, start, observation, end, why); offsets within the sentence."""
        found = self._find_mentions(doc, candidates)
        if not found:
            return _NOTHING
        toks = tokenize(doc)
        flags = self._flags(doc, toks)
        found_triggers = self._find_triggers(doc, toks)
        triggers = {role: _Triggers(found_triggers[role]) if role in found_triggers else _NO_TRIGGERS for role in _LISTS}
        gaps = _Gaps(flags)
        ends, starts = toks.ends, toks.starts
        spans = []
        observations_at: dict[int, set[int]] = {}
        for _, obs, start, end, _phrase in found:
            first = bisect.bisect_right(ends, start)
            last = bisect.bisect_left(starts, end) - 1
            spans.append((first, last))
            for i in range(first, last + 1):
                observations_at.setdefault(i, set()).add(obs)
        out = []
        dropped = []
        words = toks.words
        for (index, obs, start, end, phrase), (first, last) in zip(found, spans):
            text = phrase.text
            anatomic = text in self._anatomic and not self._enlarged_before.search(doc, max(0, start - 40), start)
            value, rule = self._classify(obs, text, first, last, anatomic, triggers, gaps, observations_at)
            why = self._not_a_finding(obs, value, first, last, words, flags)
            if why:
                dropped.append((index, start, obs, end, why))
                continue
            out.append((index, Mention(obs, start, end, doc[start:end], value, rule + _ADDED if phrase.added else rule)))
        return tuple(out), tuple(dropped)

    def _not_a_finding(self, obs: int, value: int, first: int, last: int, words: tuple[str, ...],
                       flags: list[int]) -> str | None:
        """irralctl 1.1's checks after classification (see `_rules`): why the mention names no
        finding, or None to keep it."""
        if obs == ENLARGED_CM and value == POSITIVE and not (
                _near(words, flags, first, last, R.EC_SIZE_BEFORE, R.EC_SIZE_AFTER,
                      lambda i: words[i].startswith(R.EC_SIZE_WORDS))
                or _near(words, flags, first, last, R.EC_SIZE_BEFORE, 0,
                         lambda i: words[i].startswith(R.EC_SIZE_BEFORE_ONLY))):
            return "a mediastinal structure with no size word near it (irralctl check)"
        if value != NEGATIVE and (obs == LUNG_LESION or (obs == LUNG_OPACITY and first > 0
                                                         and words[first - 1] in R.NODULAR_WORDS)) and _near(
                words, flags, first, last, R.GRANULOMA_BEFORE, R.GRANULOMA_AFTER,
                lambda i: words[i].startswith(R.GRANULOMA_WORDS)
                or (words[i] in R.CALCIFIED_WORDS and not R.NOT_CALCIFIED.intersection(words[max(0, i - 2):i]))):
            return "put down to a granuloma or called calcified (irralctl check)"
        return None

    def _find_mentions(self, doc: str, candidates) -> list[tuple[int, int, int, int, _Phrase]]:
        """(phrase index, observation, start, end, phrase) of every mention in `doc`, in phrase
        order then position; `candidates` (index, observation, phrase) hold every phrase that can
        occur in `doc`."""
        found = []
        blocked: dict[int, _Spans] = {}
        for index, obs, phrase in candidates:
            if phrase.key not in doc:
                continue
            spans = phrase.spans(doc)
            if not spans:
                continue
            if obs not in blocked:
                blocked[obs] = _Spans([s for u in self._stops.get(obs, ()) if u.key in doc for s in u.spans(doc)])
            stops = blocked[obs]
            for start, end in spans:
                if stops.overlaps(start, end):
                    continue
                found.append((index, obs, start, end, phrase))
        return found

    def _flags(self, doc: str, toks) -> list[int]:
        word_flags = self._word_flags
        flags = [word_flags.get(w, 0) for w in toks.words]
        starts = toks.starts
        for regex, flag in ((self._hard_phrases, R.HARD), (self._comma_clause, R.COMMA_CLAUSE),
                            (self._comma_pred, R.COMMA_PRED)):
            for m in regex.finditer(doc):
                i = bisect.bisect_left(starts, m.start())
                if i < len(flags):
                    flags[i] |= flag
        return flags

    def _find_triggers(self, doc: str, toks) -> dict[str, list[_Trigger]]:
        words, starts, ends = toks.words, toks.starts, toks.ends
        out: dict[str, list[_Trigger]] = {}  # only the kinds found
        dispatch, be_words = self._dispatch, self._be_words
        i, n = 0, len(words)
        while i < n:
            rules = dispatch.get(words[i])
            if rules is None:
                i += 1
                continue
            for roles, pattern, after_be in rules:
                if after_be and (i == 0 or words[i - 1] not in be_words):
                    continue
                if pattern is None:
                    end = ends[i]
                else:
                    m = pattern.match(doc, ends[i])
                    if m is None:
                        continue
                    end = m.end()
                last = max(i, bisect.bisect_left(starts, end) - 1)
                trigger = _Trigger(i, last, doc[starts[i]:end])
                for name in roles:
                    out.setdefault(name, []).append(trigger)
                i = last + 1
                break
            else:
                i += 1
        return out

    def _classify(self, obs: int, phrase: str, first: int, last: int, anatomic: bool,
                  trig: dict[str, _Triggers], gaps: _Gaps,
                  observations_at: dict[int, set[int]]) -> tuple[int, str]:
        pre_stop = R.HARD | R.CLAUSE | R.COMMA_CLAUSE
        post_stop = R.HARD | R.CLAUSE | R.PRED | R.NEGWORD | R.COMMA_CLAUSE
        conj_stop = R.HARD | R.CLAUSE | R.AND | R.NEGWORD | R.COMMA_CLAUSE | R.MODAL

        t = _pre(trig["pnu_pre"], first, last, gaps, pre_stop, R.MAX_PRE) or \
            _post(trig["pnu_post"], first, last, gaps, post_stop, R.MAX_POST)
        if t:
            return UNCERTAIN, f"uncertain before negation: '{t.text}'"
        t = _pre(trig["neg_pre"], first, last, gaps, pre_stop, R.MAX_PRE) or \
            _pre(trig["neg_adj"], first, last, gaps, pre_stop | R.COMMA_PRED, R.MAX_PRE_ADJ) or \
            _post(trig["neg_post"], first, last, gaps, post_stop, R.MAX_POST)
        if t:
            return NEGATIVE, f"negation: '{t.text}'"
        if phrase in R.UNCERTAIN_PHRASES:
            return UNCERTAIN, f"uncertainty: '{phrase}' suggests but does not establish edema"
        t = _pre(trig["unc_pre"], first, last, gaps, pre_stop, R.MAX_PRE) or \
            _pre(trig["unc_adj"], first, last, gaps, pre_stop | R.COMMA, R.MAX_UNC_ADJ) or \
            _post(trig["unc_post"], first, last, gaps, post_stop, R.MAX_POST)
        if t:
            return UNCERTAIN, f"uncertainty: '{t.text}'"
        t = _conj(trig["conj"], obs, first, last, gaps, conj_stop, observations_at)
        if t:
            return UNCERTAIN, f"uncertainty: alternatives '... {t.text} ...'"
        if anatomic:
            t = _pre(trig["anat_pre"], first, last, gaps, pre_stop | R.COMMA, R.MAX_ANAT_PRE) or \
                _post(trig["anat_post"], first, last, gaps, post_stop, R.MAX_POST)
            if t:
                return UNCERTAIN, f"uncertainty: '{t.text}' says nothing of size"
        return POSITIVE, "positive: no negation or uncertainty in scope"


# Reports are a few kB (MIMIC-CXR's longest about 10 kB). Labelling is linear in length, about
# 2 s per MB, but a file that holds far more than a report in one record is cut here, with a
# warning, so no single record can stall a run.
MAX_REPORT_CHARS = 100_000


def _capped(text: str) -> str:
    if len(text) <= MAX_REPORT_CHARS:
        return text
    cut = text.rfind(".", 0, MAX_REPORT_CHARS) + 1
    if cut < MAX_REPORT_CHARS // 2:
        cut = MAX_REPORT_CHARS
    log.warning("a report of %s characters is labelled on its first %s only (no report is that long: is "
                "one record holding a whole file?)", f"{len(text):,}", f"{cut:,}")
    return text[:cut]


def _near(words: tuple[str, ...], flags: list[int], first: int, last: int, before: int, after: int,
          test) -> bool:
    """A token index passing `test` within `before` words before or `after` words after tokens
    first..last (commas not counted), in the same sentence. Bounded: linear in report length."""
    for step, start, budget in ((-1, first - 1, before), (1, last + 1, after)):
        i = start
        while budget > 0 and 0 <= i < len(words):
            f = flags[i]
            if f & R.HARD:
                break
            if not f & R.COMMA:
                if test(i):
                    return True
                budget -= 1
            i += step
    return False


class _Spans:
    """Character spans, for "does (start, end) overlap any?" in O(log n) (sorted starts and the
    running maximum of their ends)."""

    def __init__(self, spans: list[tuple[int, int]]):
        spans = sorted(spans)
        self.starts = [a for a, _ in spans]
        self.max_end: list[int] = []
        top = -1
        for _, b in spans:
            top = max(top, b)
            self.max_end.append(top)

    def overlaps(self, start: int, end: int) -> bool:
        k = bisect.bisect_left(self.starts, end)   # spans starting before `end`
        return k > 0 and self.max_end[k - 1] > start


class _Gaps:
    """What lies between a trigger and a mention, in O(1): prefix sums of the words (commas not
    counted) and, per stop mask, of the tokens carrying a stop flag. With them and `_Triggers`,
    classifying every mention of a report costs time linear in its length (the first version
    scanned every trigger of the report for every mention: quadratic, 33 s for a 1.3 MB report)."""

    def __init__(self, flags: list[int]):
        self.flags = flags
        words = [0]
        for f in flags:
            words.append(words[-1] + (0 if f & R.COMMA else 1))
        self.words = words
        self._stops: dict[int, list[int]] = {}

    def _stop_counts(self, stop: int) -> list[int]:
        counts = self._stops.get(stop)
        if counts is None:
            counts = [0]
            for f in self.flags:
                counts.append(counts[-1] + (1 if f & stop else 0))
            self._stops[stop] = counts
        return counts

    def clear(self, lo: int, hi: int, stop: int, max_words: int) -> bool:
        """True if tokens lo..hi-1 hold no stop flag and at most `max_words` words (commas free)."""
        if hi <= lo:
            return True
        counts = self._stop_counts(stop)
        return counts[hi] == counts[lo] and self.words[hi] - self.words[lo] <= max_words


class _Triggers:
    """The triggers of one kind in a report, in text order, with their token bounds for bisection."""

    def __init__(self, triggers: list[_Trigger]):
        self.items = triggers
        self.firsts = [t.first for t in triggers]
        self.lasts = [t.last for t in triggers]

    def __bool__(self) -> bool:
        return bool(self.items)


_NO_TRIGGERS = _Triggers([])  # shared by every sentence without a trigger of some kind (never changed)


# A trigger after a mention reaches back over at most `max_words` words plus the verbs and adverbs
# that belong to it ("is", "appears grossly"); no run of those is longer than this.
_TRANSPARENT_SLACK = 8


def _pre(triggers: _Triggers, first: int, last: int, gaps: _Gaps, stop: int, max_words: int):
    """The nearest trigger before the mention whose scope reaches it, if any.

    Only the nearest one needs checking: the gap of any earlier trigger contains its gap, so it
    holds at least the same stops and words."""
    k = bisect.bisect_left(triggers.lasts, first) - 1
    if k >= 0:
        t = triggers.items[k]
        if gaps.clear(t.last + 1, first, stop, max_words):
            return t
    return None


def _post(triggers: _Triggers, first: int, last: int, gaps: _Gaps, stop: int, max_words: int):
    """The nearest trigger after the mention that reaches back to it, if any.

    Verbs and adverbs right before the trigger ("is", "appears grossly") belong to it.
    """
    flags, words = gaps.flags, gaps.words
    for k in range(bisect.bisect_right(triggers.firsts, last), len(triggers.items)):
        t = triggers.items[k]
        if words[t.first] - words[last + 1] > max_words + _TRANSPARENT_SLACK:
            break  # this trigger and every later one are out of reach
        hi = t.first
        while hi > last + 1 and flags[hi - 1] & R.TRANSPARENT:
            hi -= 1
        if gaps.clear(last + 1, hi, stop, max_words):
            return t
    return None


def _conj(triggers: _Triggers, obs: int, first: int, last: int, gaps: _Gaps, stop: int,
          observations_at: dict[int, set[int]]):
    """An "or" / "versus" joining the mention to an alternative within its noun phrase.

    Commas may only stand right before the conjunction ("effusion, or atelectasis"). Two
    alternatives of the same observation ("ICD or pacemaker") leave it certain.
    """
    flags = gaps.flags
    n = len(flags)
    # Commas stop this scope too, so a joining trigger lies within MAX_CONJ tokens (plus the comma
    # allowed right before it): only those are looked at.
    lo_k = bisect.bisect_left(triggers.lasts, first - R.MAX_CONJ - 1)
    hi_k = bisect.bisect_right(triggers.firsts, last + R.MAX_CONJ + 2)
    for t in triggers.items[lo_k:hi_k]:
        if t.first > last:        # mention ... or ...
            lo, hi, other = last + 1, t.first, range(t.last + 1, min(n, t.last + 1 + R.MAX_CONJ))
            if hi > lo and flags[hi - 1] & R.COMMA:
                hi -= 1
        elif t.last < first:      # ... or ... mention
            lo, hi, other = t.last + 1, first, range(t.first - 1, max(-1, t.first - 1 - R.MAX_CONJ), -1)
        else:
            continue
        if not gaps.clear(lo, hi, stop | R.COMMA, R.MAX_CONJ):
            continue
        alternative = set()
        for i in other:
            if flags[i] & (stop | R.COMMA):
                break
            alternative |= observations_at.get(i, set())
        if obs in alternative:
            continue
        return t
    return None


def _combine(values: list[int]) -> int:
    """The original's rule for several mentions of one observation, quirk included."""
    if len(values) == 1:
        return values[0]
    s = set(values)
    if NEGATIVE in s and UNCERTAIN in s:
        return UNCERTAIN
    if POSITIVE in s:
        return POSITIVE
    return values[0]


def _blanks_no_finding(m: Mention, incidental: frozenset[str]) -> bool:
    """A positive or uncertain mention other than Support Devices and the incidental findings."""
    return (m.observation != SUPPORT_DEVICES and m.value != NEGATIVE
            and not (m.observation == NO_FINDING and m.text in incidental))


def _aggregate(mentions: list[Mention], incidental: frozenset[str] = frozenset()
               ) -> tuple[list[int | None], list[list[Mention]]]:
    lists: list[list[Mention]] = [[] for _ in OBSERVATIONS]
    no_finding = True
    for m in mentions:
        if no_finding and _blanks_no_finding(m, incidental):
            no_finding = False
        if m.observation == NO_FINDING:
            continue
        if m.value != NEGATIVE and m.text in _CHF_TEXTS:
            lists[CARDIOMEGALY].append(
                Mention(CARDIOMEGALY, m.start, m.end, m.text, UNCERTAIN,
                        f"'{m.text}' {_VALUE_NAMES[m.value]}: uncertain cardiomegaly (CheXpert rule)")
            )
        lists[m.observation].append(m)
    values: list[int | None] = [_combine([m.value for m in ms]) if ms else None for ms in lists]
    values[NO_FINDING] = POSITIVE if no_finding else None
    return values, lists


def _sentence(doc: str, m: Mention) -> str:
    return _sentence_at(doc, m.start, m.end)


def _sentence_at(doc: str, start: int, end: int) -> str:
    lo = doc.rfind("\n", 0, start) + 1
    hi = doc.find("\n", end)
    return doc[lo:] if hi == -1 else doc[lo:hi]


def _explain_combined(item: dict, doc: str, ms: list[Mention]) -> None:
    value = item["value"]
    chosen = next(m for m in ms if m.value == value)
    rule = chosen.rule
    distinct = sorted({m.value for m in ms}, reverse=True)
    if len(distinct) > 1:
        names = " + ".join(_VALUE_NAMES[v] for v in distinct)
        rule += f"; {len(ms)} mentions, {names} -> {_VALUE_NAMES[value]}"
    item.update(phrase=chosen.text, sentence=_sentence(doc, chosen), rule=rule)


def _explain_no_finding(item: dict, doc: str, mentions: list[Mention], incidental: frozenset[str]) -> None:
    """Which mention blanked No Finding, or, when it is 1, which incidental finding did not."""
    finding = next((m for m in mentions if _blanks_no_finding(m, incidental)), None)
    if finding is None:
        kept = next((m for m in mentions if m.observation == NO_FINDING and m.value != NEGATIVE), None)
        if kept is None:
            item["rule"] = "no observation other than Support Devices is positive or uncertain"
        else:
            item.update(phrase=kept.text, sentence=_sentence(doc, kept),
                        rule=f"incidental finding '{kept.text}' is {_VALUE_NAMES[kept.value]} "
                             f"but does not blank No Finding (--no-finding incidental)")
        return
    name = OBSERVATIONS[finding.observation] if finding.observation != NO_FINDING else "other finding"
    rule = f"blank: {name} is {_VALUE_NAMES[finding.value]}"
    if incidental and finding.observation == NO_FINDING:
        rule += " (not an incidental finding)"
    item.update(phrase=finding.text, sentence=_sentence(doc, finding), rule=rule)
