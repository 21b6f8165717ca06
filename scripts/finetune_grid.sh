#!/usr/bin/env bash
# Fine-tune and evaluate one task for several attention types and seeds, then compare them in one table.
#
#   scripts/finetune_grid.sh --task TASK_DIR --out OUT [--attention "bigbird longformer dense"] [--seeds "0 1 2"]
#       [--pretrained 'pre/hg19/{attention}/pretrained.pt'] [--name NAME] [--jobs 2] [--config FILE]
#       [--no-both-strands] [-- any 'genomics-lm finetune fit' options, e.g. --trainer.max_epochs 5 --model.arch.conv_stem 15]
#
# For each attention A and seed S (skipped when its outputs exist, so a rerun resumes the grid):
#   OUT/runs/A_INIT/sS/finetuned.pt        genomics-lm finetune fit (seed_everything = data.seed = S)
#   OUT/runs/A_INIT/sS/fit_seconds         wall time of the fit
#   OUT/eval/A_INIT/sS/metrics.json ...    genomics-lm evaluate (with the k-mer baseline on the same rows, fitted
#                                          once per task: --baseline-cache OUT/baseline_cache)
#   OUT/eval/A_INIT/sS.rc/metrics.json     the same with --both-strands (no baseline; not with --no-both-strands)
# INIT is "scratch", or "pre" with --pretrained (its {attention} is replaced by A: each attention type starts
# from the checkpoint pretrained with the same attention). Then:
#   OUT/compare.tsv                        genomics-lm compare of every evaluation in OUT/eval (+ published
#                                          figures from data/published.tsv)
# --jobs N runs N fits at once with OMP_NUM_THREADS = cores / N (small models use threads poorly).
# --name sets the task name in metrics.json (default: the task folder's name).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
task="" out="" attentions="bigbird longformer dense" seeds="0 1 2" pretrained="" jobs=1 name="" both_strands=1
config="$here/configs/finetune/tiny.yaml"
while [ $# -gt 0 ]; do
  case "$1" in
    --task) task=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --attention) attentions=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --pretrained) pretrained=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --no-both-strands) both_strands=0; shift ;;
    --) shift; break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "finetune_grid.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$task" ] && [ -n "$out" ] || { echo "finetune_grid.sh: --task and --out are required (see --help)" >&2; exit 2; }
[ -f "$task/train.h5" ] || { echo "finetune_grid.sh: $task/train.h5: no such file (make it with genomics-lm make-task)" >&2; exit 2; }
name=${name:-$(basename "$task")}
G=${GENOMICS_LM:-genomics-lm}
command -v "$G" >/dev/null 2>&1 || { echo "finetune_grid.sh: $G: command not found (activate .venv or set GENOMICS_LM)" >&2; exit 2; }
threads=$(( $(nproc) / jobs )); [ "$threads" -ge 1 ] || threads=1
extra=("$@")

cell() {  # cell ATTENTION SEED
  local att=$1 seed=$2 init=scratch pre_args=()
  if [ -n "$pretrained" ]; then
    init=pre
    pre_args=(--model.pretrained "${pretrained//\{attention\}/$att}")
  fi
  local run=$out/runs/${att}_$init/s$seed ev=$out/eval/${att}_$init/s$seed
  mkdir -p "$(dirname "$run")" "$(dirname "$ev")"
  if [ ! -f "$run/finetuned.pt" ]; then
    local t0; t0=$(date +%s)
    OMP_NUM_THREADS=$threads $G finetune fit --config "$config" --data.task_dir "$task" \
      --trainer.default_root_dir "$run" --trainer.enable_progress_bar false --model.arch.attention "$att" \
      --seed_everything "$seed" --data.seed "$seed" "${pre_args[@]}" "${extra[@]}" > "$run.fit.log" 2>&1 \
      || { echo "FAILED: fit $run (see $run.fit.log)" >&2; return 1; }
    echo $(( $(date +%s) - t0 )) > "$run/fit_seconds"
  fi
  [ -f "$ev/metrics.json" ] || OMP_NUM_THREADS=$threads $G evaluate --checkpoint "$run/finetuned.pt" \
    --task-dir "$task" --out-dir "$ev" --task-name "$name" --baseline-cache "$out/baseline_cache" --overwrite \
    > "$ev.log" 2>&1 \
    || { echo "FAILED: evaluate $ev (see $ev.log)" >&2; return 1; }
  [ "$both_strands" = 0 ] || [ -f "$ev.rc/metrics.json" ] || OMP_NUM_THREADS=$threads $G evaluate --checkpoint "$run/finetuned.pt" \
    --task-dir "$task" --out-dir "$ev.rc" --task-name "$name" --both-strands --no-baseline --overwrite \
    > "$ev.rc.log" 2>&1 || { echo "FAILED: evaluate $ev.rc (see $ev.rc.log)" >&2; return 1; }
  echo "done ${att}_$init s$seed: fit $(cat "$run/fit_seconds") s"
}
export -f cell
export task out pretrained config threads name G both_strands
extra_str=""; [ ${#extra[@]} -eq 0 ] || extra_str=$(printf '%q ' "${extra[@]}")
export extra_str

status=0
for seed in $seeds; do for att in $attentions; do echo "$att $seed"; done; done \
  | xargs -P "$jobs" -L 1 bash -c 'eval "extra=($extra_str)"; cell "$0" "$1"' || status=$?
$G compare "$out"/eval/*/s*/ --published "$here/data/published.tsv" --out "$out/compare.tsv" || status=$?
exit $status
