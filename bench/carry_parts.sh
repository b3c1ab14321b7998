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
#   pip download onnxruntime-gpu==1.31.1 --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d /tmp/w && bench/carry_parts.sh split /tmp/w/onnxruntime_gpu-*.whl .ortgpu
#   pip download 'ray[serve]>=2.60' --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \
#       --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d /tmp/r \
#     && tar cf /tmp/ray.tar -C /tmp/r . && bench/carry_parts.sh split /tmp/ray.tar .raycarry   # 74 wheels, 3 parts
# Session 8 carried onnxruntime-gpu in 4 parts instead of 5: the wheel unpacked, tarred and compressed with
# `zstd -19 -T2 --long=27` (255.6 MB -> 204.2 MB; the CUDA provider's 270 MB .so is most of it), split with
# head/tail to fill each call up to 64 MiB minus the working tree, and unpacked there with pyarrow (the GPU
# image has no zstd binary): python3 -c "import pyarrow as pa, tarfile; tarfile.open(fileobj=
#   pa.CompressedInputStream(pa.OSFile('/tmp/ort.tar.zst'), 'zstd'), mode='r|').extractall('/tmp/ortsite')"
# then PYTHONPATH=/tmp/ortsite:... and onnxruntime.preload_dlls() finds the image's CUDA 13 libraries.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: bench/carry_parts.sh split FILE DIR | stash|join|site DIR [OUT]" >&2; exit 2; }
store="/tmp/tf_carry/$(basename "$dir")"
case "$cmd" in
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
      mkdir -p /tmp/site
      case "$name" in
        *.whl) python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$out" ;;
        *.tar) mkdir -p "$store/wheels" && tar xf "$out" -C "$store/wheels" &&
               python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
                 $(python3 - "$store"/wheels/*.whl <<'PY'
import importlib.metadata as md, os, re, sys
# only what the machine lacks: a second copy of numpy, protobuf, ... would shadow the image's own
for w in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", os.path.basename(w).split("-")[0]).lower()
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(w)
PY
) ;;
        *) echo "carry_parts: do not know how to install $name" >&2; exit 2 ;;
      esac
      echo "carry_parts: installed into /tmp/site (export PYTHONPATH=/tmp/site:\$PYTHONPATH)"
    fi
    ;;
  *) echo "usage: bench/carry_parts.sh stash|join|site DIR [OUT]" >&2; exit 2 ;;
esac
