#!/usr/bin/env bash
# Installs NVRTC (NVIDIA's run-time CUDA C++ compiler) from the PyPI wheel `nvidia-cuda-nvrtc`,
# so `crates/vars-cuda/tests/nvrtc_compile.rs` can compile every CUDA kernel to PTX on a machine
# with no GPU, no driver and no CUDA toolkit.
#
# Usage (stdout carries only the `export` line; progress goes to stderr):
#
#     eval "$(bash .ci/install-nvrtc.sh)"
#     CI=true cargo test -p vars-cuda --test nvrtc_compile
#
# or `source .ci/install-nvrtc.sh` (exports LD_LIBRARY_PATH into the current shell).
#
# - Installs with `pip install --target .ci/cache/nvrtc/wheel` (`.ci/cache` is git-ignored);
#   idempotent: a second run with the same version does no network access.
# - Version: NVRTC_WHEEL_VERSION (default 13.0.88, the CUDA 13.0 series). Keep NVRTC no newer
#   than the CUDA version of the driver on the GPU machines (13.0, driver 580): PTX from a newer
#   NVRTC carries a newer PTX ISA that an older driver refuses to load.
# - Creates .ci/cache/nvrtc/lib/libnvrtc.so -> <wheel>/libnvrtc.so.13 (cudarc built with
#   `cuda-13000` also finds `libnvrtc.so.13` by itself; the unversioned link is for everything
#   else that dlopens "libnvrtc.so").
# - Prints `export LD_LIBRARY_PATH=<link dir>:<wheel lib dir>:$LD_LIBRARY_PATH`; the wheel's lib
#   dir must be on the path too, because libnvrtc dlopens `libnvrtc-builtins.so.13.0` from it.

# Works both executed and sourced: never `exit` a sourced shell, never leak `set -e` into it.
_vars_nvrtc_main() {
    local version="${NVRTC_WHEEL_VERSION:-13.0.88}"
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" || return 1
    local base="$root/.ci/cache/nvrtc"
    local target="$base/wheel"
    local linkdir="$base/lib"
    local stamp="$base/installed-version"
    local python="${PYTHON:-python3}"

    if [[ -f "$stamp" && "$(cat "$stamp")" == "$version" ]] \
        && [[ -n "$(find "$target" -name 'libnvrtc.so.13' -print -quit 2>/dev/null)" ]]; then
        echo "install-nvrtc: nvidia-cuda-nvrtc $version already in $target" >&2
    else
        echo "install-nvrtc: installing nvidia-cuda-nvrtc==$version into $target" >&2
        rm -rf "$target" "$stamp"
        mkdir -p "$target" || return 1
        if ! PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
            --target "$target" "nvidia-cuda-nvrtc==$version" >&2; then
            echo "install-nvrtc: pip install failed (needs python3 with pip and access to PyPI)" >&2
            return 1
        fi
        echo "$version" >"$stamp"
    fi

    local lib
    lib="$(find "$target" -name 'libnvrtc.so.13' -print -quit)"
    if [[ -z "$lib" ]]; then
        echo "install-nvrtc: libnvrtc.so.13 not found under $target (wheel layout changed?)" >&2
        return 1
    fi
    local libdir
    libdir="$(dirname "$lib")"
    if ! compgen -G "$libdir/libnvrtc-builtins.so.13*" >/dev/null; then
        echo "install-nvrtc: libnvrtc-builtins.so.13* missing next to $lib" >&2
        return 1
    fi
    mkdir -p "$linkdir" || return 1
    # Relative link, so the cache survives being moved or copied with the checkout.
    ln -sfn "../${lib#"$base/"}" "$linkdir/libnvrtc.so" || return 1

    local ld="$linkdir:$libdir"
    echo "install-nvrtc: NVRTC ready; LD_LIBRARY_PATH gains $ld" >&2
    echo "export LD_LIBRARY_PATH=\"$ld\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\""
    _VARS_NVRTC_LD="$ld"
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    # Sourced: export into the caller's shell.
    if _vars_nvrtc_main >/dev/null; then
        export LD_LIBRARY_PATH="$_VARS_NVRTC_LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
    unset -f _vars_nvrtc_main
    unset _VARS_NVRTC_LD
else
    set -euo pipefail
    _vars_nvrtc_main
fi
