#!/usr/bin/env bash
# The long-context experiment: one task built at several context lengths on the same rows and splits, fine-tuned
# per attention type, evaluated next to the k-mer baseline, with an N-masked control, timed, then tabulated.
#
#   scripts/long_context.sh --out OUT --name NAME [--contexts "1000 4000 16000"] [--attention "bigbird longformer dense"]
#       [--skip "dense@16000"] [--control "16000"] [--control-bp 1000] [--control-attention "bigbird longformer"]
#       [--seeds "0"] [--jobs 2]
#       [--config configs/finetune/context.yaml] [--bench-steps 3] [--bench-batch 8 (the config's batch size)]
#       [--bench-json PATH (default OUT/bench.json; an existing file is reused; "none": no benchmark)]
#       -- MAKE-TASK INPUT OPTIONS
#
# MAKE-TASK INPUT OPTIONS are those of 'genomics-lm make-task' without --out-dir, --context-bp and --select-bp,
# e.g. --genome G.fa --peaks A=a.bed B=b.bed --strip-chr-prefix --k 3 --stride 3 --block-bp 100000 --seed 3.
# Steps (each skipped when its outputs exist, so a rerun resumes):
#   OUT/tasks/cC                 make-task with --context-bp C --select-bp max(contexts): the same rows and splits
#   OUT/tasks/cC_maskM           the control: the same with --mask-outside-bp M (only the central M bp are bases)
#   OUT/grid/<variant>/...       scripts/finetune_grid.sh per variant (fit + evaluate with the k-mer baseline,
#                                fitted once per variant) for each attention type and seed, minus --skip cells
#   OUT/bench.json               genomics-lm bench finetune at the context lengths (s/step, peak RSS per attention;
#                                run it when nothing else runs: dense at 16 kb needs about 15 GB)
#   OUT/summary/                 genomics-lm context-table: context.tsv, context.md, metric_vs_context.png,
#                                time_vs_context.png
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out="" name="" contexts="1000 4000 16000" attentions="bigbird longformer dense" skip="" control="" control_bp=1000
control_atts="" seeds="0" jobs=2 config="$here/configs/finetune/context.yaml" bench_steps=3 bench_batch=8 bench_json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --contexts) contexts=$2; shift 2 ;;
    --attention) attentions=$2; shift 2 ;;
    --skip) skip=$2; shift 2 ;;
    --control) control=$2; shift 2 ;;
    --control-bp) control_bp=$2; shift 2 ;;
    --control-attention) control_atts=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --bench-steps) bench_steps=$2; shift 2 ;;
    --bench-batch) bench_batch=$2; shift 2 ;;
    --bench-json) bench_json=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "long_context.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] && [ -n "$name" ] && [ $# -gt 0 ] \
  || { echo "long_context.sh: --out, --name and the make-task input options after -- are required (see --help)" >&2; exit 2; }
G=${GENOMICS_LM:-genomics-lm}
command -v "$G" >/dev/null 2>&1 || { echo "long_context.sh: $G: command not found (activate .venv or set GENOMICS_LM)" >&2; exit 2; }
select_bp=$(printf '%s\n' $contexts | sort -n | tail -1)
log() { echo "$(date +%H:%M:%S) $*"; }
mkdir -p "$out/tasks" "$out/grid"

variants=()
for c in $contexts; do variants+=("c$c"); done
for c in $control; do variants+=("c${c}_mask$control_bp"); done

for v in "${variants[@]}"; do
  d=$out/tasks/$v
  [ -f "$d/test.h5" ] && continue
  c=${v#c}; c=${c%%_*}
  mask=(); [[ $v == *_mask* ]] && mask=(--mask-outside-bp "$control_bp")
  log "make-task $v"
  $G make-task --out-dir "$d" --context-bp "$c" --select-bp "$select_bp" "${mask[@]}" "$@" > "$d.log" 2>&1 \
    || { echo "FAILED: make-task $v (see $d.log)" >&2; exit 1; }
done

status=0
for v in "${variants[@]}"; do
  c=${v#c}; c=${c%%_*}
  atts="" list=$attentions
  [[ $v == *_mask* && -n "$control_atts" ]] && list=$control_atts
  for a in $list; do [[ " $skip " == *" $a@$c "* ]] || atts="$atts $a"; done
  [ -n "$atts" ] || continue
  log "fine-tune $v:$atts"
  bash "$here/scripts/finetune_grid.sh" --task "$out/tasks/$v" --out "$out/grid/$v" --name "$name" \
    --attention "$atts" --seeds "$seeds" --jobs "$jobs" --config "$config" --no-both-strands > "$out/grid/$v.log" 2>&1 \
    || { echo "FAILED: grid $v (see $out/grid/$v.log)" >&2; status=1; }
done

bench_json=${bench_json:-$out/bench.json}
bench_opt=(--bench "$bench_json")
if [ "$bench_json" = none ]; then
  bench_opt=()
elif [ ! -f "$bench_json" ]; then
  log "bench"
  lengths=$(printf '%s,' $contexts); atts_csv=$(printf '%s,' $attentions)
  $G bench finetune --config "$config" --lengths "${lengths%,}" --attentions "${atts_csv%,}" --steps "$bench_steps" \
    --batch-size "$bench_batch" --warmup 1 --eval-rows 16 --eval-repeats 1 --no-baseline --baseline-rows 32,8,16 \
    --threads 1 \
    --json "$bench_json" > "$out/bench.log" 2>&1 || { echo "FAILED: bench (see $out/bench.log)" >&2; status=1; }
fi
log "table"
$G context-table "$out"/grid/*/eval/*/s*/ "${bench_opt[@]}" --out-dir "$out/summary" --overwrite || status=$?
exit $status
