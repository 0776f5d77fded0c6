#!/usr/bin/env bash
# Runs a command with a software WebGPU adapter: Mesa's lavapipe (Vulkan on the CPU) under Dawn, so the
# WebGPU tests run on a machine without a GPU (CI does: .ci/run). A small loader shim (shim.c) reports the
# descriptor-array dynamic-indexing features lavapipe 22.3 lacks (Dawn requires them; tfjs's shaders never
# use them). Uses Debian's mesa-vulkan-drivers and libvulkan1 when installed; otherwise unpacks them under
# $LVP_DIR (default /tmp/lvp) without installing anything. Needs a C compiler for the shim.
#   test/lavapipe/run.sh npx vitest run test/webgpu_kernels.test.ts
#   SWITCHYARD_REQUIRE_WEBGPU=1 test/lavapipe/run.sh npm test        (what CI runs)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
L=${LVP_DIR:-/tmp/lvp}
sys_icd=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
sys_loader=/usr/lib/x86_64-linux-gnu/libvulkan.so.1
mkdir -p "$L/shim"
if [ -f "$sys_icd" ] && [ -f "$sys_loader" ]; then
  icd=$sys_icd loader=$sys_loader
else
  if [ ! -f "$L/lvp.json" ]; then
    mkdir -p "$L/debs" "$L/root"
    (cd "$L/debs" && apt-get download libvulkan1 mesa-vulkan-drivers >/dev/null)
    for f in "$L"/debs/*.deb; do dpkg -x "$f" "$L/root"; done
    sed "s#/usr/lib#$L/root/usr/lib#" "$L/root/usr/share/vulkan/icd.d/lvp_icd.x86_64.json" > "$L/lvp.json"
  fi
  icd=$L/lvp.json loader=$L/root/usr/lib/x86_64-linux-gnu/libvulkan.so.1
fi
# one shim per loader, rebuilt when shim.c changes
tag=$(cat "$here/shim.c" <(echo "$loader") | md5sum | cut -c1-12)
shim=$L/shim/$tag
if [ ! -f "$shim/libvulkan.so.1" ]; then
  mkdir -p "$shim"
  ${CC:-cc} -shared -fPIC -O2 "-DLOADER=\"$loader\"" -o "$shim/libvulkan.so.1.tmp" "$here/shim.c" -ldl
  mv "$shim/libvulkan.so.1.tmp" "$shim/libvulkan.so.1"
fi
mkdir -p -m 700 "$L/xdg"  # lavapipe's window-system code warns without one
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$L/xdg} LD_LIBRARY_PATH=$shim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} VK_ICD_FILENAMES=$icd
exec "$@"
