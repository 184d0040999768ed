#!/usr/bin/env bash
# Makes sure a Vulkan driver is installed for the WebGPU backend's tests: on
# a machine without a GPU that is Mesa's lavapipe (a CPU Vulkan device). As
# root on Debian it installs mesa-vulkan-drivers and libvulkan1 when they
# are missing; otherwise it only warns, and the GPU tests skip themselves
# (or fail, when CI=true).
set -euo pipefail
# grep reads all of ldconfig's output (no -q): with pipefail, grep -q
# quitting at the first match could end ldconfig with SIGPIPE, fail the
# pipeline and reinstall the driver on a machine that has it.
if ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep 'libvulkan\.so\.1' >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-vulkan: installing mesa-vulkan-drivers libvulkan1 with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >&2
  exit 0
fi
echo "ensure-vulkan: no Vulkan driver; the webgpu tests will skip (install mesa-vulkan-drivers libvulkan1)" >&2
exit 0
