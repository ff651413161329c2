"""`irralctl compare RUN...`: mean ± std over seeds per preset, paired tests against a reference group.

Every option comes from `irralctl.compare.config.CompareConfig`.
"""

from __future__ import annotations

from typing import Any

from irralctl.cli._bind import bind, build
from irralctl.cli._common import console
from irralctl.compare.config import CompareConfig

EPILOG = """Examples:

  irralctl compare runs/baseline-seed* runs/irral-seed*

  irralctl compare runs/* --reference cmn --out tables/ablation

  irralctl compare runs/a runs/b --group-by run --confidence 0.99
"""


def _compare(*, values: dict[str, Any], given: set[str]) -> None:
    """Compare trained runs on their test split: a table over seeds and paired tests against a reference."""
    from irralctl.cli._progress import progress_bars
    from irralctl.compare import OUTPUT_FILES, compare_runs, tables, write_outputs
    from irralctl.utils.outputs import check_output, check_replaceable, output_dir

    cfg = build(CompareConfig, values, given)
    if cfg.out is not None:  # checked before the work
        check_output(cfg.out, cfg.runs)
        check_replaceable(cfg.out, overwrite=cfg.overwrite)
    with progress_bars(transient=True) as progress:
        result = compare_runs(cfg, progress)
    if cfg.out is not None:
        with output_dir(cfg.out, overwrite=cfg.overwrite, inputs=cfg.runs) as stage:
            write_outputs(result, {kind: stage / name for kind, name in OUTPUT_FILES.items()})
    console.print(tables.markdown(result), markup=False, highlight=False, soft_wrap=True)
    if cfg.out is not None:
        console.print(f"wrote {', '.join(OUTPUT_FILES.values())} to {cfg.out}", markup=False, highlight=False,
                      soft_wrap=True)


compare = bind(CompareConfig, _compare)
