#!/usr/bin/env bash
# Set up, train ppo-beta for 30,000 env frames, evaluate it on 5 held-out tracks.
# About 3 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/cr-bench train ppo-beta --frames 30000 --out "$run"
.venv/bin/cr-bench eval "$run" --episodes 5
