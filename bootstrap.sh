#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtual environment at .venv with matcher and its test tools.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
echo "bootstrap: .venv ready ($(.venv/bin/python --version), $(.venv/bin/matcher --help >/dev/null && echo 'matcher installed'))"
