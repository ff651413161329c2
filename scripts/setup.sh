#!/usr/bin/env bash
# Installs everything irralctl and its tests need on a fresh Debian machine with Python 3.10+:
# Debian packages (Java for METEOR 1.5, WordNet 3.0 for nltk's METEOR), then the package itself
# (editable, with its test extras, which include the coco and dicom extras) into the current
# Python environment, with the exact versions of constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v java >/dev/null || need_apt+=(default-jre-headless)
[ -f /usr/share/wordnet/data.noun ] || need_apt+=(wordnet-base)
[ -f /usr/share/wordnet/index.sense ] || need_apt+=(wordnet-sense-index)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
echo "setup: installing irralctl with test extras into $($PY -c 'import sys; print(sys.prefix)')"
# pyproject.toml declares ranges; constraints.txt pins the torch/torchvision CI tests (on these
# machines pip takes them from local disk).
$PY -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test]"
echo "setup: done ($(irralctl --version))"
