# Source this first in a command on the GPU machine (from the project root, after bench/gpu/pack.sh):  source .gpu/enter.sh
# It installs the carried Vulkan loaders, unpacks node and the packed folders, and puts node on PATH.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/gpu-node && xz -dc .gpu/node.xz > /tmp/gpu-node/node && chmod +x /tmp/gpu-node/node
export PATH=/tmp/gpu-node:$PATH
tar xJf .gpu/mods.tar.xz
node --version && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
