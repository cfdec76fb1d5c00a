#!/bin/sh
# One prepared run of the native GPU benchmark on a lent GPU machine (the device tool
# lends one for minutes, so everything worth knowing comes back from a single call):
#   bench.tsv    the BENCH lines that docs/bench/<card>.tsv records (forward passes,
#                +1 token at T=2048, also with each matvec shape side by side, matmul
#                GFLOP/s with every tiling);
#   trace.txt    each pass's phases at T=2048 (planning, bind groups, recording, GPU work
#                and read-back), a full pass and then runs of one-token passes;
#   profile.txt  GPU time of every dispatch of those passes (timestamp queries);
#   gpu.txt      the card and driver.
# Build the binary here first and carry it (with .gl, Debian's Vulkan loader packages,
# when the machine has no loader; see the device tool's README):
#   cargo build --profile bench-native -p engine --features gpu --example bench
#   run: sh docs/bench/device-run.sh   carry: target/bench-native/examples/bench, .gl
# Results go to $OUT (the device tool's folder), else ./bench-out.
set -u
out=${OUT:-bench-out}
bench=${BENCH:-target/bench-native/examples/bench}
mkdir -p "$out"

if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then
    export VK_DRIVER_FILES="$icd"
fi
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv >"$out/gpu.txt" 2>&1 || true

echo "bench: the table"
timeout 300 "$bench" --gpu-only --large-matmul --tilings --model public/models/rope \
    >"$out/bench.tsv" 2>"$out/bench.log"
echo "  exit $?"
echo "bench: phases of each pass at T=2048"
DROPE_GPU_TRACE=1 timeout 120 "$bench" --gpu-only --forward-only --lengths 2048 \
    --model public/models/rope >"$out/trace.txt" 2>&1
echo "  exit $?"
echo "bench: GPU time of every dispatch at T=2048"
DROPE_GPU_PROFILE=each timeout 120 "$bench" --gpu-only --forward-only --lengths 2048 \
    --model public/models/rope >"$out/profile.txt" 2>&1
echo "  exit $?"
grep -h "extend_one\|adapter" "$out/bench.tsv" "$out/trace.txt"
