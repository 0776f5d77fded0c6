#!/usr/bin/env bash
# Builds what the GPU benchmark call carries (.gl, .gpu; both git-ignored, ≈36 MB): the benchmark as one
# bundle (esbuild; tfjs inlined, Dawn's native module left external), plus ../shared/gpu/pack.sh's node
# binary, Vulkan loaders and node_modules/webgpu (linux-x64 only), and the PyTorch reference script.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .gpu
node bench/gpu/bundle.mjs bench/run.ts .gpu/bench.mjs
../shared/gpu/pack.sh node_modules/webgpu
cp ../shared/gpu/enter.sh ../shared/gpu/reference_moe_torch.py .gpu/
