#!/usr/bin/env bash
# Runs a command with a software WebGPU adapter: Mesa's lavapipe (Vulkan on the CPU) under Dawn, so the
# WGSL kernels can be tested on a machine without a GPU. Nothing is installed system-wide: the Debian
# packages are unpacked under /tmp/lvp, and a small loader shim (lavapipe_shim.c) reports the descriptor-
# array dynamic-indexing features lavapipe 22.3 lacks (Dawn requires them; tfjs's shaders never use them).
#   bench/gpu/lavapipe.sh npx vitest run test/webgpu_kernels.test.ts
#   bench/gpu/lavapipe.sh node bin/run-ts.js bench/run.ts --backend webgpu --smoke --out /tmp/smoke.json
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
L=${LVP_DIR:-/tmp/lvp}
if [ ! -f $L/shim/libvulkan.so.1 ]; then
  mkdir -p $L/debs $L/root $L/shim
  (cd $L/debs && apt-get download libvulkan1 mesa-vulkan-drivers >/dev/null)
  for f in $L/debs/*.deb; do dpkg -x "$f" $L/root; done
  sed "s#/usr/lib#$L/root/usr/lib#" $L/root/usr/share/vulkan/icd.d/lvp_icd.x86_64.json > $L/lvp.json
  sed "s#/tmp/lvp#$L#" "$here/lavapipe_shim.c" > $L/shim/shim.c
  gcc -shared -fPIC -O2 -o $L/shim/libvulkan.so.1 $L/shim/shim.c -ldl
fi
export LD_LIBRARY_PATH=$L/shim:$L/root/usr/lib/x86_64-linux-gnu VK_ICD_FILENAMES=$L/lvp.json
exec "$@"
