"""METEOR, by the METEOR 1.5 jar that pycocoevalcap ships (Java) or by nltk's implementation.

`MeteorJar` runs `java -jar meteor-1.5.jar - - -stdio -l en -norm` (coco-caption's command) once
and keeps it for the whole run: a context manager, so the JVM is stopped deterministically, not in
`__del__` as coco-caption does. Like coco-caption, each item is sent as a `SCORE` line and the 23
statistics it returns are passed back in one `EVAL` line, whose answer is the per-item scores and
the corpus score; the corpus score is METEOR of the summed statistics (Denkowski & Lavie 2014),
not the mean of the item scores.

`meteor_from_stats` recomputes a score from those statistics in Python with METEOR 1.5's
English parameters (alpha 0.85, beta 0.20, gamma 0.60, delta 0.75, module weights exact 1.0,
stem 0.6, synonym 0.8, paraphrase 0.6) and its aggregation rule (an item whose hypothesis and
reference match completely in one chunk adds no chunk). The bootstrap uses it to resample the
corpus score without calling Java again; tests check it against the jar.

`nltk` mode calls `nltk.translate.meteor_score` (METEOR 1.0-style, sentence level, nltk's own
parameters) with WordNet 3.0. Its corpus score is the mean of item scores and is *not* comparable
with the jar's; the output names the implementation for that reason.

What each needs, and the line that installs it, is in the `MeteorUnavailable` message when it is
missing: the jar needs pycocoevalcap (`pip install 'irralctl[coco]'`) and Java; nltk needs
WordNet 3.0 (Debian's packages, or nltk's downloader).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from irralctl.errors import IrralError
from irralctl.metrics._ngrams import check_pairs

log = logging.getLogger(__name__)

NAME = "meteor"
N_STATS = 23  # test/ref length, test/ref function words, 4 stages x 4 match counts, chunks, test/ref word matches
_ALPHA, _BETA, _GAMMA, _DELTA = 0.85, 0.20, 0.60, 0.75
_MODULE_WEIGHTS = np.array([1.0, 0.6, 0.8, 0.6])


# The install lines named when something is missing.
INSTALL_COCO = "pip install 'irralctl[coco]'"
INSTALL_JAVA = "apt-get install default-jre-headless"
INSTALL_WORDNET = "apt-get install wordnet-base wordnet-sense-index (or: python -m nltk.downloader wordnet)"


class MeteorUnavailable(IrralError):
    """METEOR cannot run here (no Java, no jar, no WordNet); the message says why and what to install."""


# ----------------------------------------------------------------------------- jar

def find_jar() -> Path:
    """The meteor-1.5.jar shipped inside pycocoevalcap (with its paraphrase table beside it)."""
    try:
        import pycocoevalcap.meteor.meteor as coco_meteor
    except ImportError:
        raise MeteorUnavailable(f"pycocoevalcap, which ships meteor-1.5.jar, is not installed: {INSTALL_COCO}") from None
    jar = Path(coco_meteor.__file__).with_name("meteor-1.5.jar")
    if not jar.is_file():
        raise MeteorUnavailable(f"{jar} is missing: reinstall pycocoevalcap ({INSTALL_COCO})")
    return jar


def check_jar(java: str = "java") -> Path:
    """The jar, once pycocoevalcap and Java are both there; else one error naming every missing piece."""
    missing, jar = [], None
    try:
        jar = find_jar()
    except MeteorUnavailable as e:
        missing.append(str(e))
    if shutil.which(java) is None:
        missing.append(f"'{java}' is not on PATH (METEOR 1.5 needs Java 8+): {INSTALL_JAVA}")
    if missing:
        raise MeteorUnavailable("; ".join(missing))
    return jar


def _clean_line(text: str) -> str:
    # The jar reads one line per request and splits fields on "|||": coco-caption strips "|||"
    # from hypotheses and folds double spaces; newlines (which would break the protocol) become spaces.
    return text.replace("\n", " ").replace("\r", " ")


class MeteorJar(contextlib.AbstractContextManager):
    """One METEOR 1.5 JVM for a whole run: `with MeteorJar() as m: m.compute_score(gts, res)`."""

    def __init__(self, java: str = "java", memory: str = "2G"):
        jar = check_jar(java)
        self.jar = jar
        self._lock = threading.Lock()
        try:
            self._proc = subprocess.Popen(
                [java, "-jar", f"-Xmx{memory}", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"],
                cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )
        except OSError as e:
            raise MeteorUnavailable(f"'{java}' could not be started ({e.strerror or e}): {INSTALL_JAVA}") from None

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        proc = self._proc
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                stream.close()

    def _readline(self) -> str:
        line = self._proc.stdout.readline()
        if not line:
            err = self._proc.stderr.read().decode(errors="replace").strip().splitlines()
            raise MeteorUnavailable("METEOR 1.5 stopped: " + (err[-1] if err else f"exit code {self._proc.poll()}"))
        return line.decode("utf-8").strip()

    def _exchange(self, lines: list[str], n_replies: int) -> list[str]:
        # A writer thread feeds the JVM while we read its answers: writing thousands of lines first
        # would fill both pipes and deadlock.
        payload = "".join(line + "\n" for line in lines).encode("utf-8")

        def write() -> None:
            with contextlib.suppress(BrokenPipeError):
                self._proc.stdin.write(payload)
                self._proc.stdin.flush()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        replies = [self._readline() for _ in range(n_replies)]
        writer.join()
        return replies

    def stats(self, hyps: list[str], refs: list[list[str]]) -> list[str]:
        """The jar's statistics line for each (hypothesis, references) pair."""
        lines = []
        for hyp, rs in zip(hyps, refs):
            hyp = _clean_line(hyp).replace("|||", "").replace("  ", " ")
            lines.append(" ||| ".join(("SCORE", " ||| ".join(_clean_line(r) for r in rs), hyp)))
        with self._lock:
            return self._exchange(lines, len(lines))

    def evaluate(self, stats: list[str]) -> tuple[float, np.ndarray]:
        """Send statistics back in one EVAL line: (corpus score, per-item scores) from the jar."""
        with self._lock:
            out = self._exchange(["EVAL ||| " + " ||| ".join(stats)], len(stats) + 1)
        return float(out[-1]), np.array([float(x) for x in out[:-1]])

    def compute_score(self, gts: Mapping, res: Mapping) -> tuple[float, np.ndarray]:
        """coco-caption's `Meteor().compute_score`: (corpus METEOR, per-item array)."""
        ids = check_pairs(gts, res)
        lines = self.stats([res[k][0] for k in ids], [gts[k] for k in ids])
        return self.evaluate(lines)

    def compute_with_stats(self, gts: Mapping, res: Mapping) -> tuple[float, np.ndarray, np.ndarray]:
        """As `compute_score`, plus the per-item statistics (items, 23) for `meteor_from_stats`."""
        ids = check_pairs(gts, res)
        lines = self.stats([res[k][0] for k in ids], [gts[k] for k in ids])
        corpus, items = self.evaluate(lines)
        stats = np.array([[float(x) for x in line.split()] for line in lines]).reshape(len(lines), N_STATS)
        return corpus, items, stats


def aggregation_stats(stats: np.ndarray) -> np.ndarray:
    """Per-item statistics as METEOR 1.5 adds them up: a complete one-chunk match adds no chunk."""
    stats = np.array(stats, dtype=np.float64)
    stages = stats[:, 4:20].reshape(-1, 4, 4)  # (items, stage, [test content, ref content, test function, ref function])
    test_matches = stages[:, :, 0].sum(1) + stages[:, :, 2].sum(1)
    ref_matches = stages[:, :, 1].sum(1) + stages[:, :, 3].sum(1)
    perfect = (test_matches == stats[:, 0]) & (ref_matches == stats[:, 1]) & (stats[:, 20] == 1)
    stats[perfect, 20] = 0.0
    return stats


def meteor_from_stats(stats: np.ndarray) -> np.ndarray:
    """METEOR 1.5 (English, `-norm`) from statistics (..., 23): per row, or of summed rows."""
    s = np.asarray(stats, dtype=np.float64)
    stages = s[..., 4:20].reshape(*s.shape[:-1], 4, 4)
    t_w = (_MODULE_WEIGHTS * (_DELTA * stages[..., 0] + (1 - _DELTA) * stages[..., 2])).sum(-1)
    r_w = (_MODULE_WEIGHTS * (_DELTA * stages[..., 1] + (1 - _DELTA) * stages[..., 3])).sum(-1)
    t_len = _DELTA * (s[..., 0] - s[..., 2]) + (1 - _DELTA) * s[..., 2]
    r_len = _DELTA * (s[..., 1] - s[..., 3]) + (1 - _DELTA) * s[..., 3]
    t_matches = stages[..., 0].sum(-1) + stages[..., 2].sum(-1)
    r_matches = stages[..., 1].sum(-1) + stages[..., 3].sum(-1)
    chunks = s[..., 20]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = t_w / t_len
        recall = r_w / r_len
        fmean = 1.0 / ((1 - _ALPHA) / precision + _ALPHA / recall)
        perfect = (t_matches == s[..., 0]) & (r_matches == s[..., 1]) & (chunks == 1)
        frag = np.where(perfect, 0.0, chunks / ((s[..., 21] + s[..., 22]) / 2))
        score = fmean * (1 - _GAMMA * frag**_BETA)
    return np.where(np.isnan(score), 0.0, np.maximum(score, 0.0))


# ----------------------------------------------------------------------------- nltk

# WordNet 3.0's lexicographer files (the lexnames(5WN) table), used when the man page is absent.
_LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
DEBIAN_WORDNET = Path("/usr/share/wordnet")
_MAN_PAGE = Path("/usr/share/man/man5/lexnames.5WN.gz")
_WORDNET_FILES = (
    "cntlist.rev", "index.sense", "index.adj", "index.adv", "index.noun", "index.verb",
    "data.adj", "data.adv", "data.noun", "data.verb", "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)


def lexnames_text(man_page: Path = _MAN_PAGE) -> str:
    """nltk's `lexnames` file: "NN<tab>name<tab>category" for the 45 lexicographer files.

    Parsed from the lexnames(5WN) man page that Debian's WordNet ships, when present; otherwise
    from the same table kept here.
    """
    names = list(_LEXNAMES)
    if man_page.is_file():
        import gzip

        with gzip.open(man_page, "rt", encoding="utf-8", errors="replace") as f:
            rows = re.findall(r"^(\d\d)\t(\w+\.\w+)\s*\t", f.read(), flags=re.M)
        if len(rows) == len(_LEXNAMES) and all(int(n) == i for i, (n, _) in enumerate(rows)):
            names = [name for _, name in rows]
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(names))


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "irralctl" / "nltk_data"


def build_wordnet_corpus(source: Path | None = None, root: Path | None = None) -> Path:
    """Lay out an nltk data root holding `corpora/wordnet` built from Debian's WordNet 3.0.

    nltk refuses corpus files that resolve outside its data roots (symlinks) or that have several
    links (hard links), so the database files are copied (about 35 MB, once) next to a `lexnames`
    file derived as above. Returns the data root.
    """
    from irralctl.utils.io import atomic_dir

    source = DEBIAN_WORDNET if source is None else source
    root = _cache_root() if root is None else root
    target = root / "corpora" / "wordnet"
    if (target / "lexnames").is_file() and all((target / f).is_file() for f in _WORDNET_FILES):
        return root
    missing = [f for f in _WORDNET_FILES if not (source / f).is_file()]
    if missing:
        raise MeteorUnavailable(f"WordNet 3.0 not found (nltk's data path, or {source}: missing "
                                f"{', '.join(missing[:3])}): {INSTALL_WORDNET}")
    with atomic_dir(target, overwrite=True) as tmp:
        for name in _WORDNET_FILES:
            shutil.copyfile(source / name, tmp / name)
        (tmp / "lexnames").write_text(lexnames_text(), encoding="utf-8")
        os.chmod(tmp, 0o755)
    return root


def load_wordnet():
    """A WordNet 3.0 reader: from nltk's data path / NLTK_DATA, else built from Debian's files."""
    try:
        import nltk
        from nltk.corpus.reader.wordnet import WordNetCorpusReader
    except ImportError:
        raise MeteorUnavailable("nltk is not installed: pip install nltk") from None
    try:
        pointer = nltk.data.find("corpora/wordnet")
    except LookupError:
        root = build_wordnet_corpus()
        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
        pointer = nltk.data.find("corpora/wordnet")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": not needed here
        reader = WordNetCorpusReader(pointer, None)
    return reader


def nltk_meteor_items(gts: Mapping, res: Mapping, wordnet=None) -> tuple[float, np.ndarray]:
    """nltk's METEOR per item on whitespace tokens; corpus = mean of the items."""
    from nltk.translate.meteor_score import meteor_score

    ids = check_pairs(gts, res)
    wn = load_wordnet() if wordnet is None else wordnet
    scores = np.array([meteor_score([r.split() for r in gts[k]], res[k][0].split(), wordnet=wn) for k in ids])
    return float(scores.mean()), scores


def check(mode: str) -> None:
    """Raise `MeteorUnavailable` now when METEOR `mode` ("jar" or "nltk") could not run, without
    starting Java (training checks before its first epoch what its final test will need)."""
    if mode == "jar":
        check_jar()
    elif mode == "nltk":
        load_wordnet()


def nltk_version() -> str:
    import nltk

    return nltk.__version__
