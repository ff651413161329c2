"""`run_ablation`: train every preset with every seed, then compare them; resumable.

    OUT/
      ablate.json                the grid: its options, the shared training options, the runs
      runs/<preset>-seed<k>/     one `irralctl train` run directory each
      compare.{md,csv,tex,json,png}   `irralctl compare OUT/runs/* --reference <first preset>`

Every run shares every training option; a preset sets only the component switches (`PRESETS`),
and the seed is the run's. Initial weights are drawn per (seed, module), so two presets at one
seed share every weight they have in common (irralctl.model.init): the comparison is paired.

Runs go seed by seed (every preset at seed 0, then at seed 1, ...), so an interrupted grid
already holds complete seeds. Running the same command again continues it: a finished run
(test_metrics.json) is skipped, an interrupted one (its `.NAME.partial` stage with a last.pt) is
resumed exactly, anything else of that name (no checkpoint) is trained again. A run trained
with other options than the grid's is refused, naming the option.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path

from irralctl.ablate.config import PER_RUN, AblateConfig
from irralctl.errors import ConfigError, IrralError
from irralctl.model.config import PRESETS
from irralctl.progress import SILENT, Progress
from irralctl.runs.layout import LAST, RunLayout
from irralctl.training.config import TrainConfig
from irralctl.utils.config import (
    flatten,
    from_dict,
    load_config_file,
    provenance,
    to_flags,
    to_jsonable,
    unflatten,
)

# Options that may differ between a grid and a run it already holds: where and how fast it ran,
# and the name of the size profile (the sizes themselves are compared one by one).
_NO_EFFECT = ("out", "overwrite", "dataset", "size", "runtime.device", "runtime.workers", "runtime.prefetch")
FINISHED, INTERRUPTED, BROKEN, NEW = "finished", "interrupted", "broken", "new"
ACTIONS = {FINISHED: "finished, skipped", INTERRUPTED: "interrupted, resuming from its last checkpoint",
           BROKEN: "unfinished without a checkpoint, training again", NEW: "training"}


@dataclass(frozen=True)
class GridRun:
    preset: str
    seed: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


@dataclass
class AblateResult:
    out: Path
    runs: list[GridRun]
    found: dict[str, str] = field(default_factory=dict)     # run name -> its state when the grid started
    comparison: dict | None = None                          # the compare_runs result
    files: list[Path] = field(default_factory=list)


def grid_runs(cfg: AblateConfig) -> list[GridRun]:
    """The runs of the grid, seed by seed."""
    return [GridRun(p, s, cfg.out / "runs" / f"{p}-seed{s}") for s in cfg.seed_values for p in cfg.presets]


def run_config(cfg: AblateConfig, run: GridRun) -> TrainConfig:
    """The shared options with the run's preset switches, seed and directory."""
    return replace(cfg.train, out=run.path, overwrite=False, preset=run.preset, seed=run.seed,
                   model=cfg.train.model.replace(**PRESETS[run.preset]))


def state(run: GridRun) -> str:
    from irralctl.runs.layout import stage_of

    layout = RunLayout(run.path)
    if layout.test_metrics.is_file():
        return FINISHED
    if (stage_of(run.path) / LAST).is_file():
        return INTERRUPTED
    if run.path.exists() or stage_of(run.path).exists():
        return BROKEN
    return NEW


def _differences(saved: TrainConfig, wanted: TrainConfig) -> list[str]:
    a, b = flatten(to_jsonable(saved)), flatten(to_jsonable(wanted))
    out = [f"--{k.split('.')[-1].replace('_', '-')} (run: {a.get(k)!r}, grid: {b.get(k)!r})"
           for k in sorted(set(a) | set(b)) if k not in _NO_EFFECT and a.get(k) != b.get(k)]
    if Path(saved.dataset).resolve() != Path(wanted.dataset).resolve():
        out.append(f"DATASET (run: {saved.dataset}, grid: {wanted.dataset})")
    return out


def _check_same_options(run: GridRun, saved: TrainConfig, wanted: TrainConfig) -> None:
    differ = _differences(saved, wanted)
    if differ:
        raise ConfigError(f"{run.path} was trained with other options than this grid's: {', '.join(differ)}",
                          hint="run the grid with the options it started with (see ablate.json), or choose another "
                               "--out")


def _saved_options(run: GridRun, current: str) -> TrainConfig:
    from irralctl.training import saved_config

    if current == FINISHED:
        return from_dict(TrainConfig, load_config_file(RunLayout(run.path).config), saved=True)
    return saved_config(run.path)  # the interrupted stage's last.pt


def _command(cfg: TrainConfig) -> str:
    """The `irralctl train` command line that trains this run alone."""
    return shlex.join(["irralctl", "train", *to_flags(cfg)])


def shared_options(cfg: AblateConfig) -> dict:
    """The grid's options with the training options the runs share (those set per run left out)."""
    flat = flatten(to_jsonable(cfg))
    return unflatten({k: v for k, v in flat.items() if k not in PER_RUN})


def run_ablation(cfg: AblateConfig, progress: Progress = SILENT, *, config_file: Path | None = None) -> AblateResult:
    """Train the grid's missing runs in this process, one after the other, then write the comparison."""
    from irralctl.training.trainer import resolved_size
    from irralctl.utils.io import write_json
    from irralctl.utils.outputs import check_output

    # Sized once for the whole grid, so that ablate.json and every run record the same sizes.
    cfg = replace(cfg, train=resolved_size(cfg.train))
    t = cfg.train
    check_output(cfg.out, [t.dataset, t.visual_weights, t.loss.text_encoder, config_file])
    runs = grid_runs(cfg)
    wanted = {r.name: run_config(cfg, r) for r in runs}
    plan = {r.name: state(r) for r in runs}
    # Every existing run is checked before anything trains: a wrong grid fails in seconds.
    for r in runs:
        if plan[r.name] in (FINISHED, INTERRUPTED):
            _check_same_options(r, _saved_options(r, plan[r.name]), wanted[r.name])
    cfg.out.mkdir(parents=True, exist_ok=True)
    write_json(cfg.out / "ablate.json", {
        "config": shared_options(cfg), "config_file": None if config_file is None else str(config_file),
        "per_run": "preset, seed, out and the component switches (memory, mfa, acl, multiscale, no_image) of the "
                   "preset; every other training option is shared",
        "seeds": list(cfg.seed_values),
        "runs": [{"name": r.name, "preset": r.preset, "seed": r.seed, "path": str(r.path),
                  "switches": PRESETS[r.preset], "command": _command(wanted[r.name])} for r in runs],
        **provenance(),
    })

    result = AblateResult(out=cfg.out, runs=runs)
    for k, r in enumerate(runs, start=1):
        current = plan[r.name]
        progress.event("ablate_run", {"run": r.name, "index": k, "total": len(runs), "state": current,
                                      "action": ACTIONS[current]})
        try:
            _bring_up(r, current, wanted[r.name], progress)
        except IrralError as e:
            e.message = f"{r.name} ({k}/{len(runs)}): {e.message}"
            e.hint = e.hint or (f"finished runs are kept in {cfg.out / 'runs'}: the same `irralctl ablate` command "
                                "continues the grid")
            raise
        result.found[r.name] = current
    result.comparison, result.files = _compare(cfg, runs, progress)
    return result


def _bring_up(run: GridRun, current: str, wanted: TrainConfig, progress: Progress) -> None:
    """Train, resume or restart one run as its state asks (a finished run is left as it is)."""
    from irralctl.training import resume_config, train

    if current == INTERRUPTED:
        # The trainer's own resume path: the saved options, with where and how fast it runs now.
        changes = {"dataset": wanted.dataset, **{f"runtime.{k}": getattr(wanted.runtime, k)
                                                 for k in ("device", "workers", "prefetch")}}
        train(resume_config(run.path, changes), progress, resume=True, again=_AGAIN)
    elif current in (NEW, BROKEN):
        train(replace(wanted, overwrite=current == BROKEN), progress, again=_AGAIN)


# An interrupted run of the grid continues where it stopped when the grid runs again.
_AGAIN = "run the same `irralctl ablate` command again to continue (it resumes this run)"


def _compare(cfg: AblateConfig, runs: list[GridRun], progress: Progress) -> tuple[dict, list[Path]]:
    from irralctl.compare import OUTPUT_FILES, CompareConfig, compare_runs, write_outputs
    from irralctl.utils.outputs import output_files

    paths = [r.path for r in runs]
    compare_cfg = CompareConfig(runs=tuple(paths), group_by="preset", reference=cfg.reference_preset,
                                meteor=cfg.train.eval.meteor)
    comparison = compare_runs(compare_cfg, progress)
    targets = {kind: cfg.out / name for kind, name in OUTPUT_FILES.items()}
    with output_files(targets.values(), overwrite=True, inputs=paths) as stages:
        write_outputs(comparison, dict(zip(targets, stages)))
    return comparison, list(targets.values())
