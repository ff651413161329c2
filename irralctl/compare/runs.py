"""Finished training runs, read and checked for a comparison: same test studies, same references.

A run directory (docs/formats.md, "Run directory") gives what a comparison needs: its preset,
seed, component switches and dataset (`config.json`), its scores (`test_metrics.json`) and the
decoded test split (`test_predictions.jsonl`), which holds every study's reference. Runs are
grouped by preset (the seeds of one configuration) or one group per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from irralctl.errors import InputError, IrralError
from irralctl.metrics.inputs import Studies, read_predictions
from irralctl.model.config import PRESETS, SWITCHES
from irralctl.runs.layout import RunLayout
from irralctl.training.config import TrainConfig
from irralctl.utils.config import field_default, flatten
from irralctl.utils.io import read_json

# Options that cannot change a run's results: left out of the check that runs differ only where
# a comparison says they do.
_NO_EFFECT = ("out", "overwrite", "dataset", "runtime.device", "runtime.workers", "runtime.prefetch")
# Design options of a component (-> the switch that turns the component on): a run with the
# component that changes one from its default is its own group, labelled by the change
# (`irral[ctx-words=off]`, by the option's flag), so one ablation can compare the choices.
DESIGN_OPTIONS = {"model.context_words": "acl", "model.context_decisions": "acl", "model.head_pooling": "acl",
                  "loss.mfa_mode": "mfa"}
# What may differ between the groups of an ablation (besides the seeds within a group).
_ABLATED = ("preset", *(f"model.{s}" for s in SWITCHES), *DESIGN_OPTIONS)


@dataclass(frozen=True)
class Run:
    """One finished training run."""

    path: Path
    name: str                     # the directory's name
    preset: str | None
    seed: int | None
    switches: dict[str, bool]     # the component switches it was trained with
    design: dict[str, object]     # DESIGN_OPTIONS that differ from their defaults (dotted key -> value)
    dataset: dict                 # {path, name, fingerprint}
    options: dict                 # its TrainConfig, flattened ("optim.lr": ...)
    test_metrics: dict            # test_metrics.json
    studies: Studies              # test_predictions.jsonl: ids, predictions, references

    @property
    def label(self) -> str:
        """The preset, with the switches it was changed by: `cmn`, `cmn+mfa`, `irral-multiscale`."""
        preset = self.preset or "custom"
        base = PRESETS.get(preset, {})
        changed = [("+" if on else "-") + name.replace("_", "-") for name, on in self.switches.items()
                   if name in base and base[name] != on]
        design = [f"{_flag_name(key)}={_word(value)}" for key, value in self.design.items()]
        return preset + "".join(changed) + (f"[{','.join(design)}]" if design else "")


def _flag_name(dotted: str) -> str:
    """The command-line name of a TrainConfig option, without dashes: `model.context_words` -> `ctx-words`."""
    import dataclasses

    from irralctl.utils.config import field_types

    cls = TrainConfig
    *parents, name = dotted.split(".")
    for part in parents:
        cls = field_types(cls)[part]
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    return (field.metadata.get("flag") or "--" + name.replace("_", "-")).removeprefix("--")


def _word(value: object) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def read_run(path: str | Path) -> Run:
    """A finished run directory, or an `InputError` saying what is missing."""
    path = Path(path)
    layout = RunLayout(path)
    if not path.is_dir():
        raise InputError("not a run directory", path=path, hint="give directories written by `irralctl train`")
    if not layout.config.is_file():
        raise InputError("no config.json: not a run directory written by `irralctl train`", path=path)
    for needed in (layout.test_metrics, layout.test_predictions):
        if not needed.is_file():
            raise InputError(f"no {needed.name}: the run did not finish its test", path=path,
                             hint=f"finish it with `irralctl train DATASET --resume {path}`")
    saved = read_json(layout.config)
    options = saved.get("config") if isinstance(saved, dict) else None
    if not isinstance(options, dict):
        raise InputError("not a run's config.json (no `config` table)", path=layout.config)
    model = options.get("model") or {}
    seed = saved.get("seed", options.get("seed"))
    metrics = read_json(layout.test_metrics)
    if not isinstance(metrics, dict) or not isinstance(metrics.get("metrics"), dict):
        raise InputError("not a score file (no `metrics` table)", path=layout.test_metrics)
    studies = read_predictions(layout.test_predictions, need_reference=True)
    if metrics.get("n_studies") not in (None, len(studies.ids)):
        raise InputError(f"{layout.test_metrics.name} scores {metrics['n_studies']} studies but "
                         f"{layout.test_predictions.name} holds {len(studies.ids)}", path=path,
                         hint="the two files come from different tests; train or score the run again")
    dataset = saved.get("dataset") or {}
    flat = _completed(options)
    return Run(path=path, name=path.resolve().name, preset=options.get("preset"),
               seed=seed if isinstance(seed, int) else None,
               switches={s: bool(model[s]) for s in SWITCHES if s in model},
               design={key: flat[key] for key, switch in DESIGN_OPTIONS.items()
                       if flat.get(f"model.{switch}") and key in flat and flat[key] != field_default(TrainConfig, key)},
               dataset={k: dataset.get(k) for k in ("path", "name", "fingerprint")},
               options=flat, test_metrics=metrics, studies=studies)


def _completed(options: dict) -> dict:
    """The run's options flattened, with those it predates filled in as it was trained (a config
    saved before an option existed means the value in its class's ADDED table)."""
    from irralctl.utils.config import from_dict, to_jsonable

    try:
        return flatten(to_jsonable(from_dict(TrainConfig, options, strict=False, saved=True)))
    except IrralError:  # a config this version cannot read whole: its stated values only
        return flatten(options)


def check_same_studies(runs: Sequence[Run]) -> None:
    """Refuse runs decoded on different test studies, or scored against different references."""
    first = runs[0]
    refs = dict(zip(first.studies.ids, first.studies.references))
    for run in runs[1:]:
        ids = set(run.studies.ids)
        if ids != set(refs):
            only_here, only_first = sorted(ids - set(refs)), sorted(set(refs) - ids)
            raise InputError(
                f"covers other test studies than {first.path} (only here: {_ids(only_here)}; only there: "
                f"{_ids(only_first)})", path=run.path,
                hint="compare runs tested on the same split of the same dataset")
        differ = [k for k, r in zip(run.studies.ids, run.studies.references) if refs[k] != r]
        if differ:
            raise InputError(f"{len(differ)} test stud(y/ies) have other references than in {first.path}: "
                             f"{_ids(differ)}", path=run.path,
                             hint="compare runs tested against the same references (same dataset and tokeniser "
                                  "field)")


def _ids(ids: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(map(str, ids[:limit]))
    return (shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")) or "none"


def group_runs(runs: Sequence[Run], group_by: str) -> dict[str, list[Run]]:
    """Group label -> runs, in the order groups first appear. `preset`: by label; `run`: one each."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = run.label if group_by == "preset" else run.name
        if group_by == "run" and key in groups:
            key = str(run.path)  # two runs of the same name from different folders
        groups.setdefault(key, []).append(run)
    return groups


def option_differences(groups: dict[str, list[Run]]) -> list[str]:
    """What differs between runs beyond what the comparison is about (seeds within a group; preset
    and component switches between groups), one line per option."""
    out = []
    every = [r for runs in groups.values() for r in runs]
    keys = sorted({k for r in every for k in r.options} - set(_NO_EFFECT) - {"seed"})
    for key in keys:
        within = [g for g, runs in groups.items() if len({_show(r.options.get(key)) for r in runs}) > 1]
        if within:
            out.append(f"runs of the same group differ in {key}: " + "; ".join(
                f"{g}: {', '.join(sorted({_show(r.options.get(key)) for r in groups[g]}))}" for g in within))
        elif key not in _ABLATED and len({_show(r.options.get(key)) for r in every}) > 1:
            out.append(f"groups differ in {key} besides their components: " + "; ".join(
                f"{g}: {_show(runs[0].options.get(key))}" for g, runs in groups.items()))
    return out


def _show(value) -> str:
    return "unset" if value is None else str(value)
