#!/bin/bash
# The GPU benchmark call, run on the device machine after bench/gpu/pack.sh (carry .gl and .gpu):
#   bash bench/gpu/run_gpu.sh        (NOROBUST=1 adds a run with Dawn's robustness and validation off)
# PyTorch fp32 references (as given, and with x.requires_grad like our step) and the WebGPU speed suite,
# side by side in one call; figures land in $OUT (results.json, bench.log, torch*.txt).
source .gpu/enter.sh > $OUT/env.txt 2>&1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv,noheader >> $OUT/env.txt 2>&1
export PYTHONUNBUFFERED=1
timeout 150 python3 .gpu/reference_moe_torch.py > $OUT/torch.txt 2>&1
sed 's/x=torch.randn(T,D,device=dev)/x=torch.randn(T,D,device=dev,requires_grad=True)/' .gpu/reference_moe_torch.py > /tmp/ref_dx.py
grep -c 'requires_grad=True)$' /tmp/ref_dx.py > $OUT/torch_dx.txt
timeout 150 python3 /tmp/ref_dx.py >> $OUT/torch_dx.txt 2>&1
cat $OUT/torch.txt $OUT/torch_dx.txt
set -o pipefail
timeout ${BENCH_S:-300} node .gpu/bench.mjs --backend webgpu --torch $OUT/torch.txt,$OUT/torch_dx.txt 2>&1 | grep -v artificially > $OUT/bench.log
echo "bench rc $?" >> $OUT/bench.log
cp bench/results.json $OUT/results.json
if [ -n "$NOROBUST" ]; then
  SWITCHYARD_DAWN='enable-dawn-features=disable_robustness,skip_validation' timeout ${NOROBUST_S:-200} node .gpu/bench.mjs --backend webgpu --out $OUT/results_norobust.json 2>&1 | grep -v artificially > $OUT/bench_norobust.log
  grep -E "^\| (MoE|dispatcher|WGSL|matmul|step phases|one GPU|kernel|dense)" $OUT/bench_norobust.log | cut -c1-260
fi
grep -v "^  " $OUT/bench.log | cut -c1-300 | tail -40
