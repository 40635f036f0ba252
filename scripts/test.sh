#!/usr/bin/env bash
# Set up, then run the linter, the type checker and the test suite (slow tests excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest -m "not slow" -n auto --dist worksteal "$@"
