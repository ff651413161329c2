#!/usr/bin/env bash
# What a user of `pip install irralctl` gets: build the wheel, install it into a fresh virtual
# environment and run the pipeline from a folder outside the source tree (about a minute on 2 cores).
#
# The environment sees the current Python's site-packages (--system-site-packages), where
# scripts/setup.sh put torch and the other dependencies, and installs with --no-index: nothing is
# downloaded, and a data file missing from the wheel (the R2Gen split manifest, the labeller's
# phrase lists) fails here instead of in a user's hands. CI runs it after the test suite (.ci/run).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/irralctl-smoke.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { echo "smoke: $*"; }

# Build from a copy of what the wheel is made of, so the source tree gains no build/ or egg-info.
step "building the wheel"
mkdir -p "$WORK/src"
cp "$ROOT/pyproject.toml" "$ROOT/README.md" "$WORK/src/"
cp -r "$ROOT/irralctl" "$WORK/src/"
find "$WORK/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel --no-deps --no-build-isolation -q -w "$WORK/dist" "$WORK/src"
WHEEL=$(ls "$WORK"/dist/irralctl-*.whl)

step "installing $(basename "$WHEEL") into a fresh environment"
# Without its own pip and setuptools: the venv's bundled setuptools would shadow the newer one
# torch requires, and pip runs from the outer Python, installing into the venv (--python: pip 22.3+).
"$PY" -m venv --system-site-packages --without-pip "$WORK/venv"
VPY="$WORK/venv/bin/python"
IRRALCTL="$WORK/venv/bin/irralctl"
"$PY" -m pip --python "$VPY" install -q --no-index -c "$ROOT/constraints.txt" "$WHEEL"

mkdir -p "$WORK/run"
cd "$WORK/run"
unset PYTHONPATH
# The package imported must be the wheel's, not a checkout (an editable install of the system
# Python is visible through --system-site-packages) nor the current folder.
"$VPY" - <<'EOF'
import sys
from pathlib import Path

import irralctl
from irralctl.data.splits import r2gen_split

where = Path(irralctl.__file__).resolve()
assert where.is_relative_to(Path(sys.prefix).resolve()), f"irralctl imported from {where}, not the wheel"
counts = {s: list(r2gen_split().values()).count(s) for s in ("train", "val", "test")}
assert counts == {"train": 2069, "val": 296, "test": 590}, counts
print(f"smoke: irralctl {irralctl.__version__} from {where.parent}; R2Gen split {counts}")
EOF
"$IRRALCTL" --version

step "label"
printf '%s\n' "The heart is normal in size. No pneumothorax or pleural effusion." \
  "Mild cardiomegaly. Possible right lower lobe pneumonia." > reports.txt
"$IRRALCTL" label reports.txt --out labels.csv >/dev/null
test "$(sed -n 3p labels.csv)" = "2,,,1,,,,,-1,,,,,,"

step "prepare phantoms"
"$IRRALCTL" prepare phantoms --n 40 --image-size 64 --seed 0 --out data -j 2 >/dev/null

step "train one tiny epoch"
"$IRRALCTL" train data --out run --preset irral --backbone tiny --tiny-width 8 --image-size 64 --resize 72 \
  --d-model 32 --n-heads 4 --d-ff 64 --enc-layers 1 --dec-layers 1 --memory-slots 64 --memory-topk 8 \
  --batch-size 16 --epochs 1 --warmup 1 --max-tokens 20 --meteor off --device cpu --workers 0 >/dev/null

step "generate"
"$IRRALCTL" generate --dataset data --split test --checkpoint run --out preds.jsonl --device cpu >/dev/null

step "score"
"$IRRALCTL" score preds.jsonl --meteor off --json scores.json >/dev/null
# generate + score reproduce the run's own test figures (the same pipeline and scorer).
"$VPY" - <<'EOF'
import json

ours = json.load(open("scores.json"))["metrics"]
run = json.load(open("run/test_metrics.json"))["metrics"]
for name in ("bleu_4", "rouge_l", "cider", "ce_macro_f1_14"):
    assert ours[name] == run[name], (name, ours[name], run[name])
print(f"smoke: bleu_4 {ours['bleu_4']:.4f}, ce_macro_f1_14 {ours['ce_macro_f1_14']:.4f} (equal to the run's test_metrics.json)")
EOF
step "passed"
