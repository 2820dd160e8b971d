#!/usr/bin/env bash
# Issue 23, item 3, as one prepared call on a lent GPU (device tool; ≤ 10 minutes on an H100):
#   1. the real-model preset (SmolLM2-135M-Instruct from ../shared/models, --plan gpu): its
#      finetune + evaluation, timed (`setup --preset smollm2-tofu`);
#   2. one NPO + all unlearning run of the preset's target on tofu/forget10-dev, timed;
#   3. the evaluation's one-pass path against separate forwards, fp32 and bf16, on CUDA
#      (benchmarks/one_pass_check.py, a Llama-family model);
#   4. the engine's training step against the HF-Trainer peer on the same GPU (benchmarks/peer_step.py).
# Everything goes to $OUT (timings.txt + one log per step); a step that fails does not stop the rest.
#
#   bash benchmarks/gpu_issue23.sh          # on the GPU machine, from the repository root
set -uo pipefail
OUT=${OUT:-/tmp/gpu_issue23}
mkdir -p "$OUT"
export GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
for dir in ../shared/models/smollm2-135m-instruct shared/models/smollm2-135m-instruct; do
  gguf=$(ls "$dir"/*.gguf 2>/dev/null | head -1)
  [ -n "$gguf" ] && export WORKBENCH_SMOLLM2_GGUF="$gguf" && break
done
python3 -c "import torch, transformers; print(torch.cuda.get_device_name(0), 'torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee "$OUT/device.txt"

step() {  # step NAME COMMAND...: run it, log it, time it
  local name=$1; shift
  local start=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name: rc $rc, $((SECONDS - start)) s: $*" | tee -a "$OUT/timings.txt"
}

step builtin python3 -m engine setup
step preset python3 -m engine setup --preset smollm2-tofu --plan gpu --device cuda
step npo python3 -m engine unlearn --model smollm2-tofu --data tofu/forget10-dev --loss npo --selector all \
  --epochs 2 --lr 1e-5 --device cuda --json "$OUT/npo.json"
step one_pass python3 benchmarks/one_pass_check.py --model smollm2-tofu --device cuda --dtype bfloat16
step peer python3 benchmarks/peer_step.py --model smollm2 --data tofu/forget01 --device cuda
tail -n 4 "$OUT"/*.log
