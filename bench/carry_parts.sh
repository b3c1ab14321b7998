#!/usr/bin/env bash
# Large wheels reach the GPU machine in parts, one part per device call (a call carries <= 64 MiB):
# here they lie split in git-ignored folders (.ortgpu: onnxruntime-gpu, .raycarry: ray[serve] and its
# wheels), each with a SHA256 file of the whole. On the device, while the machine stays warm
# (it is given back ~30 s after a call; /tmp survives until then):
#   bench/carry_parts.sh stash DIR        copy the parts this call carried (DIR/p*) to /tmp/tf_carry/DIR
#   bench/carry_parts.sh join DIR OUT     cat the stashed parts in order into OUT, check DIR/SHA256
#   bench/carry_parts.sh site DIR         join, then pip-install the wheel(s) into /tmp/site
#                                         (then: export PYTHONPATH=/tmp/site:$PYTHONPATH)
# e.g. calls with carry [".ortgpu/p1"] ... [".ortgpu/p5", ".ortgpu/SHA256"], each running
# `bench/carry_parts.sh stash .ortgpu`, the last one `... && bench/carry_parts.sh site .ortgpu`.
# Making the parts (here, before the GPU session; the folders are git-ignored and do not outlive a checkout):
#   bench/carry_parts.sh split FILE DIR   FILE in 60 MiB parts DIR/p1, p2, ... and DIR/SHA256
#   bench/carry_parts.sh zsplit WHEEL|FOLDER DIR   the wheel unpacked (or the folder), tarred and zstd-compressed,
#                                         in parts: `site` unpacks it into /tmp/site (CARRY_SITE) on the device
#                                         (onnxruntime-gpu 1.31.1: 255.6 MB as a wheel, 204 MB this way)
#   pip download onnxruntime-gpu==1.31.1 --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d /tmp/w && bench/carry_parts.sh split /tmp/w/onnxruntime_gpu-*.whl .ortgpu
#   pip download 'ray[serve]>=2.60' --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d /tmp/r \
#     && tar cf /tmp/ray.tar -C /tmp/r . && bench/carry_parts.sh split /tmp/ray.tar .raycarry   # 74 wheels, 3 parts
# Session 8 carried onnxruntime-gpu in 4 parts instead of 5 this way (zsplit; parts sized to fill each call:
# CARRY_PART_SIZE=62M when the call carries nothing else, the working tree is ~3 MB); on the device
# `site` unpacks it with pyarrow (the GPU image has no zstd binary), and onnxruntime.preload_dlls() then
# finds the image's CUDA 13 libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: bench/carry_parts.sh split|zsplit FILE DIR | stash|join|site DIR [OUT]" >&2; exit 2; }
store="/tmp/tf_carry/$(basename "$dir")"
site=${CARRY_SITE:-/tmp/site}
case "$cmd" in
  zsplit)  # FILE (a wheel: unpacked first) or a folder, as NAME.tar.zst in parts (what `site` installs)
    src=$dir; dir=${3:-}
    [ -e "$src" ] && [ -n "$dir" ] || { echo "usage: bench/carry_parts.sh zsplit FILE|DIR DIR" >&2; exit 2; }
    command -v zstd >/dev/null || { echo "carry_parts: zsplit needs zstd here" >&2; exit 2; }
    tmp=$(mktemp -d)
    name=$(basename "$src"); name=${name%.whl}
    if [ -d "$src" ]; then tree=$src; else tree=$tmp/tree; mkdir -p "$tree" && python3 -m zipfile -e "$src" "$tree"; fi
    tar -C "$tree" -cf - . | zstd -q -19 -T0 --long=27 -o "$tmp/$name.tar.zst"
    bash "$0" split "$tmp/$name.tar.zst" "$dir"
    rm -rf "$tmp"
    ;;
  split)
    file=$dir; dir=${3:-}
    [ -f "$file" ] && [ -n "$dir" ] || { echo "usage: bench/carry_parts.sh split FILE DIR" >&2; exit 2; }
    mkdir -p "$dir" && rm -f "$dir"/p* "$dir/SHA256"
    split -b "${CARRY_PART_SIZE:-60M}" -a 3 -d "$file" "$dir/part."
    i=0
    for p in $(ls "$dir"/part.* | sort); do i=$((i + 1)); mv "$p" "$dir/p$i"; done
    echo "$(sha256sum "$file" | cut -d' ' -f1) $(basename "$file")" > "$dir/SHA256"
    echo "carry_parts: $file in $i part(s) under $dir (+ SHA256)"
    ;;
  stash)
    mkdir -p "$store"
    n=0
    for p in "$dir"/p*; do [ -f "$p" ] && cp "$p" "$store/" && n=$((n + 1)); done
    echo "carry_parts: $n part(s) stashed; now in $store: $(ls "$store" | tr '\n' ' ')"
    ;;
  join|site)
    [ -f "$dir/SHA256" ] || { echo "carry_parts: $dir/SHA256 was not carried" >&2; exit 2; }
    read -r sum name < "$dir/SHA256"
    out=${3:-$store/$name}
    cat $(ls "$store"/p* | sort -V) > "$out"
    echo "$sum  $out" | sha256sum -c --quiet - || { echo "carry_parts: $name: checksum differs (a part missing?)" >&2; exit 1; }
    echo "carry_parts: $out joined and checked"
    if [ "$cmd" = site ]; then
      mkdir -p "$site"
      case "$name" in
        *.tar.zst)  # an unpacked package tree (zsplit); the GPU image has no zstd binary: pyarrow reads it
          mkdir -p "$store/tree"
          if command -v zstd >/dev/null; then zstd -q -dc --long=27 "$out" | tar xf - -C "$store/tree"
          else python3 - "$out" "$store/tree" <<'PY' || exit 1
import sys, tarfile
import pyarrow as pa
tarfile.open(fileobj=pa.CompressedInputStream(pa.OSFile(sys.argv[1]), "zstd"), mode="r|").extractall(sys.argv[2])
PY
          fi
          cp -r "$store/tree/." "$site/" ;;
        *.whl) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$out" ;;
        *.tar) mkdir -p "$store/wheels" && tar xf "$out" -C "$store/wheels" || exit 1
               # only what the machine lacks: a second copy of numpy, protobuf, ... would shadow the image's own
               # (a second `site` in the same machine finds them all installed: nothing to do)
               lacking=$(python3 - "$store"/wheels/*.whl <<'PY'
import importlib.metadata as md, os, re, sys
for w in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", os.path.basename(w).split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(w)
PY
)
               if [ -n "$lacking" ]; then
                 python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" $lacking \
                   || exit 1
               else
                 echo "carry_parts: every wheel of $name is installed already"
               fi ;;
        *) echo "carry_parts: do not know how to install $name" >&2; exit 2 ;;
      esac
      echo "carry_parts: installed into $site (export PYTHONPATH=$site:\$PYTHONPATH)"
    fi
    ;;
  *) echo "usage: bench/carry_parts.sh split|zsplit FILE DIR | stash|join|site DIR [OUT]" >&2; exit 2 ;;
esac
