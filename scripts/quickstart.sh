#!/usr/bin/env bash
# The first ten minutes on 2 CPU cores, from nothing:
#   1. set up .venv;
#   2. score the best published agent (ppo-annealed) on 4 held-out test tracks, and record a GIF of it driving;
#   3. run the main job on a small scale: `cr-bench tune ppo` with 3 trials of 20,000 env frames
#      (trial 0 is the default ppo config, so it is also a short training run of the default agent).
# The real thing is `cr-bench tune ppo --trials 50` (hours; see README, Tuning).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
model=results/models/ppo-annealed  # the best headline agent (results/README.md)

echo "== the published ppo agent on 4 held-out test tracks (gymnasium, the reference simulator)"
.venv/bin/cr-bench eval "$model" --episodes 4 --out "$out/eval"
echo "== a GIF of it driving one lap"
.venv/bin/cr-bench record "$model" --out "$out/ppo.gif"

echo "== the main job, small: cr-bench tune ppo, 3 trials of 20,000 frames"
.venv/bin/cr-bench tune ppo --trials 3 --frames-per-trial 20000 --evals-per-trial 2 \
    --eval-episodes 3 --final-eval-episodes 3 --study-name quickstart \
    --results-dir "$out" --runs-dir "$out/runs"

trial0="$(ls -d "$out"/runs/tune/quickstart/trial-0/seed-* | head -1)"
cat <<DONE

Done. Open:
  $out/ppo.gif                          the published agent driving (score $(sed -n 's/^mean: //p' "$out/eval/summary.yaml" | cut -c1-6) on 4 test tracks)
  $out/tune/quickstart/summary.md       the small study: trials, best config, history plot
  $trial0/curve.csv   the default ppo's training curve (20,000 frames: far too few to drive yet)
  .venv/bin/tensorboard --logdir $trial0/tb   its TensorBoard logs
Next:
  .venv/bin/cr-bench tune ppo --trials 50                         the main job (hours; resumable)
  .venv/bin/cr-bench compare --suite benchmarks/smoke.yaml --workers 2   agents side by side
  .venv/bin/cr-bench play                                         drive it yourself (needs a display)
DONE
