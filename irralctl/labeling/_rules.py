"""Negation and uncertainty triggers, scope terminators and pseudo-triggers.

The CheXpert labeler decides each mention with NegBio: rules over a dependency parse, tried in
three passes (uncertainty that must win over negation, e.g. "cannot exclude"; negation;
uncertainty). Without a parser we express what those patterns say as scoped triggers, in the
manner of NegEx (Chapman et al., 2001): a *pre* trigger governs mentions after it up to the end of
its scope, a *post* trigger governs mentions before it when nothing between them closes the
clause. The lexicon is seeded from NegBio's pattern files as the CheXpert labeler ships them
(e.g. "no", "without", "free of", "clear of", "resolved", "removal of", "normal", "within normal
limits", "not enlarged", "cannot exclude", "no new", "may", "possible", "suggest", "versus",
"X or Y", "borderline", "obscured", "not well visualized", and "stable" / "unchanged" said of the
heart or mediastinum), plus the de-identification marks of the IU X-Ray reports ("most XXXX"
stands for "most likely").

Triggers, words and checks marked "irralctl 1.1" are additions for wording of real reports that
the original rules miss; the rest renders the original's patterns.

Everything here is data: compiled once by `Labeler` and never mutated.
"""

from __future__ import annotations

import re

# --- Triggers -----------------------------------------------------------------------------------
# Each trigger starts at a given word (or comma) and continues with an optional regular expression
# matched right after that word; triggers are tried token by token, in the order below, and the
# first that matches at a token wins and consumes its words. So "no new" is taken before "no",
# "not well seen" before "not", and pseudo-triggers ("no increase", "not only") consume the
# negation inside them without effect (NegEx's pseudo-triggers).
#
# Kinds: pnu = uncertainty that wins over negation (NegBio's first pass: "cannot exclude");
# neg = negation; unc = uncertainty; anat = uncertainty said only of a structure ("stable
# silhouette": CheXpert's own rules); conj = alternatives ("X or Y"). Suffixes give the direction
# a trigger governs: _pre (mentions after it), _post (before it), _bi (both); neg_norm is a
# "normal" predicate, which also qualifies what follows ("normal in size and contour"); neg_adj is
# an attributive "normal" (short scope forward). pseudo triggers are recognised and ignored.
# `after_be`: the trigger counts only right after a verb or adverb ("is possible", "is normal").

_EXCLUDED = r"(?:be\s+)?(?:(?:entirely|completely|definitely|totally|fully)\s+)?(?:excluded|ruled\s+out)"
_EXCLUDE = r"(?:be\s+)?(?:(?:entirely|completely|definitely|totally)\s+)?(?:exclude|rule\s+out)"
_SEEN = r"(?:seen|visualized|visible|identified|present|evident|demonstrated|detected|apparent)"
_RANGE_NORMAL = r"(?:\s+|-)(?:(?:limits?|range|end)\s+(?:of\s+)?)?normal"
# Words after which "normal" cannot be qualifying a noun: "heart size normal and ...".
_NOT_A_NOUN_NEXT = (r"(?=\s*(?:$|[.,;:)\n]|(?:and|in|for|size|limits|without|with|but|except|on|"
                    r"bilaterally|throughout|otherwise|status|again)\b))")

TRIGGERS: tuple[tuple[str, tuple[str, ...], str, bool], ...] = (
    # irralctl 1.1: a hedged size is uncertain for the structure before it ("heart size borderline
    # enlarged") and, within its noun phrase only, after it ("borderline enlarged heart").
    ("unc_size", ("borderline",), r"(?=(?:\s+|-)(?:enlarged|large|enlargement|widened|prominent))", False),
    # irralctl 1.1: hedges said after the finding ("is another consideration", "is in the
    # differential", "should be excluded") and "possibility of".
    ("unc_post", ("is", "are"), r"\s+(?:also\s+)?(?:(?:a|another)\s+(?:possible\s+|diagnostic\s+|differential\s+)?"
                                r"(?:consideration|possibility)|(?:included\s+)?(?:in|within)\s+the\s+differential)", False),
    ("unc_post", ("should",), r"\s+(?:also\s+)?be\s+(?:excluded|ruled\s+out)", False),
    ("unc_pre", ("possibility",), r"(?:\s+of)?", False),
    # Uncertainty that wins over negation.
    ("pnu_post", ("not", "cannot"), r"\s+" + _EXCLUDED, False),
    ("pnu_post", ("can", "could"), r"\s+not\s+" + _EXCLUDED, False),
    ("pnu_pre", ("cannot",), r"\s+" + _EXCLUDE, False),
    ("pnu_pre", ("can", "could"), r"\s+not\s+" + _EXCLUDE, False),
    ("pnu_pre", ("can't",), r"\s+" + _EXCLUDE, False),
    ("pnu_pre", ("unable",), r"\s+to\s+" + _EXCLUDE, False),
    ("pnu_bi", ("difficult", "hard"), r"\s+to\s+(?:exclude|rule\s+out)", False),
    # A range from normal to abnormal: "upper limits of normal to borderline enlarged".
    ("pnu_post", ("upper", "high", "top"), _RANGE_NORMAL + r"\s+to\s+(?:borderline|mild|mildly|slightly)", False),
    ("pnu_post", ("normal",), r"\s+to\s+(?:borderline|mild|mildly|slightly|minimally)", False),
    ("pnu_pre", ("no",), r"\s+new", False),
    ("pnu_pre", ("no",), r"\s+evidence\s+to\s+rule\s+out", False),
    ("pnu_pre", ("ensure",), r"(?:\s+that)?(?:\s+there\s+(?:is|are))?\s+no", False),
    # "No change" / "has not changed" said of a structure: uncertain; of a finding: nothing.
    ("anat_bi", ("no",), r"(?:\s+(?:significant|appreciable|substantial|interval))*\s+change", False),
    ("anat_post", ("has", "have"), r"\s+(?:not\s+changed|remained\s+(?:stable|unchanged)|been\s+stable|"
                                   r"xxxx\s+xxxx(?=\s+in\s+the\s+interval))", False),
    ("anat_post", ("not",), r"\s+changed", False),
    # Pseudo-triggers.
    ("pseudo", ("no",), r"(?:\s+(?:significant|appreciable|substantial|interval|further|definite|major|"
                        r"real|gross))*\s+(?:increase|decrease|progression|worsening|improvement)", False),
    ("pseudo", ("without",), r"(?:\s+(?:significant|appreciable|interval|definite))*\s+(?:change|progression)", False),
    ("pseudo", ("not",), r"\s+only", False),
    ("pseudo", ("not",), r"(?:\s+been)?\s+" + _SEEN + r"\s+(?:on|in)\s+(?:the\s+)?"
                         r"(?:prior|previous|earlier|comparison|old|lateral|frontal|pa|ap)", False),
    ("pseudo", ("excluded",), r"\s+from\s+(?:the\s+)?(?:view|field|image|film|study)", False),
    ("pseudo", ("gram",), r"[\s-]+negative", False),
    ("pseudo", ("age-indeterminate",), r"", False),
    ("pseudo", ("age",), r"\s+indeterminate", False),
    ("pseudo", ("indeterminate", "uncertain"), r"\s+age", False),
    # Uncertainty after the mention.
    ("unc_bi", ("possible", "probable", "likely", "questionable", "questioned", "suspected",
                "suspicious", "equivocal", "indeterminate", "uncertain", "borderline", "favored"), r"", True),
    # irralctl 1.1: "borderline" before a noun is an adjective with the short scope of one (it used
    # to govern like "possible", up to 12 words and across commas: "borderline heart size, tracheostomy tube").
    ("unc_adj", ("borderline",), r"", False),
    ("unc_post", ("may", "might", "could", "can"), r"\s+(?:also\s+)?(?:be\s+)?(?:present|seen|noted|visible)", False),
    ("unc_post", ("poorly", "incompletely", "suboptimally"),
     r"(?:\s+|-)(?:evaluated|visualized|seen|assessed|characterized|imaged|identified)", False),
    ("unc_post", ("not",), r"\s+(?:well|clearly|fully)(?:\s+|-)(?:evaluated|visualized|seen|assessed|"
                           r"characterized|imaged|identified)", False),
    ("unc_post", ("not-well-seen", "not-well-visualized"), r"", False),
    ("unc_post", ("obscured",), r"", False),
    ("unc_post", ("partially", "partly"), r"\s+obscured", False),
    ("unc_post", ("not",), r"\s+appreciated", False),
    ("unc_post", ("would", "could", "may"), r"\s+be\s+(?:a\s+)?consideration", False),
    ("unc_post", ("more", "most"), r"\s+xxxx(?=\s*(?:$|[.,;:\n]))", False),
    # Negation by a "normal" predicate.
    ("neg_norm", ("within", "in", "at"), r"\s+(?:the\s+)?(?:normal\s+limits?|limits?\s+of\s+normal)", False),
    ("neg_norm", ("top", "upper", "high"), _RANGE_NORMAL, False),
    ("neg_norm", ("normal", "unremarkable"), _NOT_A_NOUN_NEXT, False),
    ("neg_pre", ("negative",), r"\s+for", False),
    ("neg_norm", ("normal", "unremarkable", "negative"), r"", True),
    # Negation after the mention.
    ("neg_post", ("not",), r"\s+(?:(?:significantly|substantially|markedly|appreciably|definitely)\s+)?"
                           r"(?:enlarged|widened|dilated|increased)", False),
    ("neg_post", ("not",), r"\s+(?:definitely\s+)?" + _SEEN, False),
    ("neg_post", ("no",), r"\s+longer\s+" + _SEEN, False),
    ("neg_post", ("withdrawn", "discontinued", "disappeared"), r"", False),
    ("neg_bi", ("resolved", "cleared", "removed", "absent"), r"", False),
    # A structure "stable", "unchanged", "similar", "prominent": says nothing of its size.
    ("anat_bi", ("stable", "unchanged", "unchanging", "similar", "prominent"), r"", False),
    ("anat_pre", ("prominence",), r"\s+of", False),
    # Negation before the mention.
    ("neg_pre", ("no", "not", "without", "none", "neither", "nor", "never"), r"", False),
    ("neg_pre", ("free", "clear", "clearing"), r"\s+of", False),
    ("neg_pre", ("absence", "disappearance", "removal", "resolution"), r"\s+of", False),
    ("neg_pre", ("rather",), r"\s+than", False),
    ("neg_pre", ("instead", "history"), r"\s+of", False),
    ("neg_adj", ("normal", "unremarkable"), r"", False),
    # Uncertainty before the mention.
    ("unc_pre", ("possible", "possibly", "probable", "probably", "presumed", "presumably", "presumptive",
                 "questionable", "questionably", "questioned", "suspected", "suspect", "equivocal",
                 "indeterminate", "uncertain", "maybe", "perhaps", "likely", "unlikely",
                 "may", "might", "could", "can"), r"(?:\s+(?:also\s+|still\s+)?be)?", False),
    ("unc_pre", ("question",), r"(?:\s+of)?", False),
    ("unc_pre", ("suspicious", "suspicion", "concern", "concerning", "worrisome", "worrying"),
     r"(?:\s+(?:for|of))?", False),
    ("unc_pre", ("suggest", "suggests", "suggested", "suggesting", "suggestive"), r"(?:\s+of)?", False),
    ("unc_pre", ("suggestion",), r"\s+of", False),
    ("unc_pre", ("compatible",), r"(?:\s+with)?", False),
    ("unc_pre", ("consider", "considered", "favor", "favors", "favour", "favours", "favoured"), r"", False),
    ("unc_pre", ("differential",), r"(?:\s+diagnos[ie]s)?(?:\s+(?:includes?|of|considerations?))?", False),
    ("unc_pre", ("evaluate", "evaluation", "assess", "assessment"), r"\s+for", False),
    ("unc_pre", ("correlate", "correlation", "correlated", "correlating"), r"(?:\s+clinically)?\s+for", False),
    ("unc_pre", ("recommended", "to"), r"(?:\s+to)?\s+(?:exclude|rule[\s-]+out)", False),
    ("unc_pre", ("exclude", "rule-out"), r"", False),
    ("unc_pre", ("rule",), r"\s+out", False),
    ("unc_pre", ("raise", "raises"), r"\s+(?:the\s+)?(?:possibility|question)\s+of", False),
    # IU X-Ray de-identification replaced "likely" everywhere: "most XXXX", "XXXX represents",
    # ", XXXX atelectasis".
    ("unc_pre", ("most", "more", "less"), r"\s+xxxx", False),
    ("unc_pre", ("xxxx",), r"(?=\s+(?:represent|secondary|related|due|reflect|indicat))", False),
    ("unc_pre", (",",), r"\s+xxxx\b(?!\s+(?:is|are|was|were)\b)", False),
    # "X or Y", "X versus Y" offered as alternatives (NegBio's conj:or and conj:versus rules).
    ("conj", ("or", "versus", "vs"), r"", False),
)

# Words that may stand between a mention and a post-trigger without breaking the clause: verbs,
# adverbs and the like ("heart size IS GROSSLY normal", "contour IS STABLE AND within normal limits").
# "xxxx" is the IU de-identification mark, which often replaced exactly such a word.
TRANSPARENT_WORDS = frozenset({
    "is", "are", "was", "were", "be", "been", "being", "appears", "appear", "appeared", "remains",
    "remain", "remained", "seems", "seem", "looks", "look", "has", "have", "had", "xxxx", "also",
    "again", "otherwise", "now", "still", "currently", "grossly", "essentially", "overall", "to",
    "near", "at", "the", "toward", "towards", "stable", "unchanged", "and", "slightly", "mildly",
    "minimally", "completely", "entirely", "since", "interval",
})
# Words after which an adjective is predicative ("is normal", "is grossly normal").
BE_WORDS = frozenset({
    "is", "are", "was", "were", "be", "been", "appears", "appear", "appeared", "remains", "remain",
    "remained", "seems", "seem", "looks", "look", "xxxx", "also", "again", "otherwise", "now",
    "still", "currently", "grossly", "essentially", "overall",
})

# Edema phrases that are uncertain by themselves unless negated (CheXpert's additions to NegBio:
# congestion and indistinct vessels suggest, but do not establish, oedema).
UNCERTAIN_PHRASES = frozenset({
    "vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence",
})
# A structure said to be enlarged is a finding, not a neutral structure: "enlarged cardiac contour"
# (irralctl 1.1: also when the phrase starts inside "cardiomediastinal", "enlarged cardio|mediastinal").
ENLARGED_BEFORE = re.compile(r"\b(?:enlarged|widened|increased|large|enlargement\s+of\s+the|"
                             r"widening\s+of\s+the)\s+(?:cardio)?$")

# Mention phrases (after "_" -> " ") that name a structure rather than a finding.
ANATOMIC_PHRASES = frozenset({
    "the heart", "heart size", "cardiac size", "cardiac shadow", "cardiac contour",
    "cardiac silhouette", " mediastinum", "cardiomediastinum", "contour",
    "mediastinal configuration", "mediastinal silhouette", "pericardial silhouette",
    "cardiac silhouette and vascularity",
})

# --- Scope terminators ------------------------------------------------------------------------
HARD = 1       # closes every scope: sentence punctuation, "but", "however", ...
CLAUSE = 2     # closes a pre-trigger's scope and blocks a post-trigger: verbs, relatives, "with"
PRED = 4       # a predicate already said of the mention: blocks post-triggers ("enlarged, ...")
NEGWORD = 8    # "no", "not", "without": blocks post-triggers
COMMA_CLAUSE = 16  # a comma that opens a new clause (", there is", ", the heart")
COMMA = 32
AND = 64
COMMA_PRED = 128   # a comma followed by a new finding ("..., small effusion")
MODAL = 256        # a hedge or verb: ends the noun phrase around "or" / "versus"
TRANSPARENT = 512  # a verb or adverb that may stand just before a post-trigger

HARD_PUNCT = frozenset(".;:?!")
HARD_WORDS = frozenset({
    "but", "however", "although", "though", "except", "excepting", "besides", "whereas",
    "while", "yet", "nevertheless", "nonetheless", "otherwise",
})
HARD_PHRASES = re.compile(r"\b(?:aside|apart)\s+from\b|\bother\s+than\b")
CLAUSE_WORDS = frozenset({
    "which", "who", "whom", "whose", "where", "when", "with", "there", "here", "since",
    "because", "given", "is", "are", "was", "were", "be", "been", "being", "am", "has", "have",
    "had", "appears", "appear", "appeared", "remains", "remain", "remained", "seems", "seem",
    "seen", "noted", "identified", "present", "demonstrated", "evident", "detected",
    "appreciated", "observed", "shown", "measures", "measuring",
    # irralctl 1.1: "status post" opens a clause of its own ("heart size is normal status post
    # sternotomy": the normal heart says nothing of the sternotomy wires).
    "status",
})
PRED_WORDS = frozenset({
    "enlarged", "enlargement", "large", "larger", "small", "smaller", "mild", "mildly",
    "moderate", "moderately", "severe", "severely", "minimal", "minimally", "marked",
    "markedly", "prominent", "increased", "increasing", "decreased", "decreasing", "widened",
    "widening", "tortuous", "stable", "unchanged", "persistent", "improved", "improving",
    "worsened", "worsening", "again", "redemonstrated", "new", "abnormal", "slightly",
})
# irralctl 1.1: verbs that frame a new predicate ("monitor leads show normal heart size"): like a
# predicate, they keep a post-trigger after them from reaching back to the subject, but a negation
# before them still governs their object ("the lungs do not demonstrate infiltrate").
FRAME_VERBS = frozenset({"show", "shows", "showing", "demonstrate", "demonstrates", "demonstrating",
                         "reveal", "reveals", "revealing"})
NEG_WORDS = frozenset({"no", "not", "without", "none"})
# Hedges and verbs that end the noun phrase an "or" / "versus" joins.
MODAL_WORDS = frozenset({
    "may", "might", "could", "would", "can", "should", "represent", "represents", "representing",
    "reflect", "reflects", "reflecting", "suggest", "suggests", "suggesting", "suggestive",
    "indicate", "indicates", "indicating", "likely", "probably", "possibly", "xxxx", "due",
    "secondary", "related", "consistent", "compatible",
})
COMMA_CLAUSE_RE = re.compile(
    r",(?=\s+(?:the|there|it|this|these|those|they|which|who|with|and\s+there|and\s+the)\b)"
)
COMMA_PRED_RE = re.compile(
    r",(?=\s+(?:" + "|".join(sorted(PRED_WORDS | NEG_WORDS)) + r")\b)"
)

# Maximum words between a trigger and the mention it governs (commas not counted).
MAX_PRE = 12
MAX_PRE_ADJ = 6
MAX_POST = 12
MAX_CONJ = 4
MAX_ANAT_PRE = 4
MAX_UNC_ADJ = 6     # irralctl 1.1: "borderline" before a noun

# --- irralctl 1.1: checks after classification ----------------------------------------------
# Enlarged Cardiomediastinum is named by structures (mediastinum, contour, silhouette): CheXpert
# means the enlargement, so a structure said to be there with no size word near it ("clips
# overlying the mediastinum", "a mass in the posterior mediastinum", "contour abnormality of a rib")
# is no finding. A word starting with one of these, within EC_SIZE_BEFORE words before or
# EC_SIZE_AFTER after the phrase in its sentence, is a size word.
EC_SIZE_WORDS = ("enlarg", "widen", "wide", "large", "increas", "bulg", "promin", "fullness", "mass",
                 "convex", "expan", "lobulat")
EC_SIZE_BEFORE_ONLY = ("abnormal",)   # "abnormal mediastinum", not "contour abnormality of a rib"
EC_SIZE_BEFORE = 6
EC_SIZE_AFTER = 8
# A nodule put down to granulomatous disease, or called calcified, is a granuloma: no Lung Lesion
# (CheXpert's own "calcified nodule" unmention, extended to "calcified right lung nodules" and "dense
# nodule ... suggests a previous granulomatous process"), and a nodular opacity so described is no
# Lung Opacity either. Checked within GRANULOMA_BEFORE words before and GRANULOMA_AFTER after the
# phrase, in its sentence.
GRANULOMA_WORDS = ("granulom",)
CALCIFIED_WORDS = frozenset({"calcified", "calcific"})
NOT_CALCIFIED = frozenset({"not", "non", "without", "no"})   # within 2 words before: "not definitely calcified"
NODULAR_WORDS = frozenset({"nodular", "nodular-appearing"})
GRANULOMA_BEFORE = 3
GRANULOMA_AFTER = 12
