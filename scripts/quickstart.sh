#!/usr/bin/env bash
# Set up, then run the main job on a small scale: `cr-bench tune ppo` with 3 trials of
# 20,000 env frames each (trial 0 is ppo's default config). A few minutes on 2 CPU cores.
# The real thing is `cr-bench tune ppo --trials 50` (hours; see README, Tuning).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
.venv/bin/cr-bench tune ppo --trials 3 --frames-per-trial 20000 --evals-per-trial 2 \
    --eval-episodes 3 --final-eval-episodes 3 --study-name quickstart \
    --results-dir "$out" --runs-dir "$out/runs"
echo "study outputs: $out/tune/quickstart/ (summary.md, trials.csv, best.yaml, history.png)"
