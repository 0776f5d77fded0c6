#!/usr/bin/env bash
# Builds what the GPU benchmark call carries to a GPU machine that has no Node (.gl, .gpu; both git-ignored,
# ≈36 MB): the benchmark as one bundle (esbuild; tfjs inlined, Dawn's native module left external), this
# machine's node binary, the Vulkan/EGL loader packages (downloaded once from Debian), node_modules/webgpu
# (linux-x64 only), bench/gpu/enter.sh and the PyTorch layer reference. Run from the project root after npm ci.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .git/info; for d in /.gl/ /.gpu/; do grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >> .git/info/exclude; done
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 >/dev/null 2>&1)
fi
mkdir -p .gpu
node bench/gpu/bundle.mjs bench/run.ts .gpu/bench.mjs
node_bin=$(command -v node)
if [ ! -s .gpu/node.xz ] || [ "$node_bin" -nt .gpu/node.xz ]; then xz -T2 -6 -c "$node_bin" > .gpu/node.xz; fi
# Only linux-x64 native builds travel; maps and minified duplicates stay home.
tar cf - --exclude='*/dist/darwin-*' --exclude='*/dist/win32-*' --exclude='*/dist/linux-arm64' \
  --exclude='*.map' --exclude='*.min.js' node_modules/webgpu | xz -T2 -3 > .gpu/mods.tar.xz
cp bench/gpu/enter.sh .gpu/enter.sh
cp bench/torch/moe_layer.py .gpu/reference_moe_torch.py
du -ch .gl .gpu | tail -1
