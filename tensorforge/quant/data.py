"""Calibration data: .npz files (name -> array, batches along dim 0), a folder of images with a
preprocessing spec, or random data (placeholder scales)."""
from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import TensorforgeError
from ..fileio import read_npz

log = logging.getLogger("tensorforge")
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_spec(spec: str | None) -> dict:
    """'resize=256,crop=224,mean=0.485:0.456:0.406,std=0.229:0.224:0.225,layout=NCHW,scale=255'."""
    out = {"resize": None, "crop": None, "mean": [0.0], "std": [1.0], "layout": "NCHW", "scale": 255.0}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        k, _, v = part.partition("=")
        k = k.strip()
        if k in ("mean", "std"):
            out[k] = [float(x) for x in v.split(":")]
        elif k in ("resize", "crop"):
            out[k] = int(v)
        elif k == "scale":
            out[k] = float(v)
        elif k == "layout":
            out[k] = v.strip().upper()
        else:
            raise TensorforgeError(f"unknown preprocessing key '{k}' (resize, crop, mean, std, layout, scale)")
    return out


def preprocess(img, spec: dict, size: tuple | None = None, gray: bool = False) -> np.ndarray:
    """A PIL image -> float32 CHW/HWC array per the spec; size (H, W): resized to it when the spec
    gives neither resize nor crop; gray: one channel."""
    from PIL import Image
    img = img.convert("L" if gray else "RGB")
    if spec["resize"]:
        w, h = img.size
        r = spec["resize"] / min(w, h)
        img = img.resize((max(1, round(w * r)), max(1, round(h * r))), Image.BILINEAR)
    if spec["crop"]:
        w, h = img.size
        c = spec["crop"]
        left, top = (w - c) // 2, (h - c) // 2
        img = img.crop((left, top, left + c, top + c))
    if size and not spec["resize"] and not spec["crop"]:
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    a = np.asarray(img, np.float32)
    a = a[..., None] if a.ndim == 2 else a
    a = (a / spec["scale"] - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return a.transpose(2, 0, 1) if spec["layout"] == "NCHW" else a


def _fixed(d) -> bool:
    return isinstance(d, int) and d > 0


def _image_input(input_names, shapes: dict, sp: dict):
    """(name, channels, height, width) of the one 4-D image input (None: not fixed by the model)."""
    if len(input_names) != 1:
        raise TensorforgeError(f"a folder of images feeds one image input; this model has {len(input_names)} "
                               f"({', '.join(input_names)}): give the calibration data as a .npz")
    name = input_names[0]
    shp = list(shapes.get(name) or [])
    if sp["layout"] not in ("NCHW", "NHWC"):
        raise TensorforgeError(f"--preprocess layout={sp['layout']}: NCHW or NHWC")
    if len(shp) != 4:
        raise TensorforgeError(f"input '{name}' has {len(shp)} dims: a folder of images needs a 4-D image input "
                               f"(N, C, H, W; N, H, W, C with layout=NHWC)")
    c, h, w = (shp[1], shp[2], shp[3]) if sp["layout"] == "NCHW" else (shp[3], shp[1], shp[2])
    c, h, w = (d if _fixed(d) else None for d in (c, h, w))
    if c not in (None, 1, 3):
        raise TensorforgeError(f"input '{name}' has {c} channels ({sp['layout']}): images give 1 (gray) or 3 (RGB)")
    for k in ("mean", "std"):
        if len(sp[k]) not in (1, c or 3):
            raise TensorforgeError(f"--preprocess {k} has {len(sp[k])} values for {c or 3} channels")
    return name, c, h, w


def _load_images(path: str, input_names, shapes: dict, batch: int, spec, count: int):
    from PIL import Image
    sp = parse_spec(spec)
    name, c, h, w = _image_input(input_names, shapes, sp)
    b0 = shapes[name][0]
    batch = b0 if _fixed(b0) else max(1, batch)
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXT))[:count * batch]
    if not files:
        raise TensorforgeError(f"{path}: no images ({', '.join(IMAGE_EXT)})")
    arrs = []
    for f in files:
        try:
            with Image.open(os.path.join(path, f)) as img:
                arrs.append(preprocess(img, sp, (h, w) if h and w else None, gray=c == 1))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise TensorforgeError(f"{os.path.join(path, f)}: cannot read the image ({e})") from None
    hw = {a.shape[1:] if sp["layout"] == "NCHW" else a.shape[:2] for a in arrs}
    if len(hw) > 1:
        raise TensorforgeError(f"{path}: the images preprocess to different sizes ({', '.join(sorted(map(str, hw)))});"
                               " add crop= to --preprocess")
    got = hw.pop()
    if (h and got[0] != h) or (w and got[1] != w):
        raise TensorforgeError(f"the images preprocess to {got[0]}x{got[1]} but input '{name}' takes {h}x{w}: set "
                               "--preprocess resize=,crop= to match, or give neither to resize to the input")
    if len(arrs) < batch:
        raise TensorforgeError(f"{path}: {len(arrs)} image(s), fewer than the model's batch of {batch}")
    arr = np.stack(arrs)
    return [{name: arr[i:i + batch]} for i in range(0, len(arr) - batch + 1, batch)]


def _load_npz(path: str, input_names, shapes: dict, batch: int, types: dict | None):
    arrays = read_npz(path)
    missing = [n for n in input_names if n not in arrays]
    if missing:
        raise TensorforgeError(f"{path}: no array for input(s) {', '.join(missing)} (has {', '.join(arrays)})")
    feeds = {}
    for n in input_names:
        a, shp = arrays[n], list(shapes.get(n) or [])
        if a.ndim == 0:
            raise TensorforgeError(f"{path}: array '{n}' is a scalar; calibration arrays hold samples along dim 0")
        if shp and (a.ndim != len(shp) or any(_fixed(d) and d != s for d, s in zip(shp[1:], a.shape[1:]))):
            want = "x".join(str(d) if _fixed(d) else "?" for d in shp)
            raise TensorforgeError(f"{path}: array '{n}' has shape {'x'.join(map(str, a.shape))}, input '{n}' takes "
                                   f"{want} (batches along dim 0)")
        want_t = np.dtype((types or {}).get(n, a.dtype))
        if a.dtype != want_t:
            if a.dtype.kind != want_t.kind and not (a.dtype.kind in "iu" and want_t.kind in "iu"):
                raise TensorforgeError(f"{path}: array '{n}' is {a.dtype}, input '{n}' takes {want_t}")
            a = a.astype(want_t)
        feeds[n] = a
    lens = {len(a) for a in feeds.values()}
    if len(lens) > 1:
        raise TensorforgeError(f"{path}: the arrays have different lengths along dim 0 ({sorted(lens)})")
    total = lens.pop()
    b0 = (shapes.get(input_names[0]) or [None])[0]
    batch = b0 if _fixed(b0) else max(1, batch)
    if total < batch:
        raise TensorforgeError(f"{path}: {total} sample(s), fewer than the model's batch of {batch}")
    return [{k: a[i:i + batch] for k, a in feeds.items()} for i in range(0, total - batch + 1, batch)]


def load_batches(path: str | None, input_names, shapes: dict, batch: int = 1, spec: str | None = None,
                 count: int = 16, seed: int = 0, types: dict | None = None):
    """A list of feeds {input: array}: random data (with a warning) when path is None (integer inputs,
    `types` {input: numpy dtype}, get 0 / 1: valid token ids and masks); a folder of images (one image
    input, resized to the model's fixed H x W unless the spec says how); a .npz, checked against the
    inputs' `shapes` (lists, None or a symbol where a dim is not fixed). A model's fixed batch dim
    overrides `batch`."""
    if path is None:
        log.warning("quantize: no calibration data; random inputs give placeholder scales "
                    "(fine for performance work, meaningless for accuracy)")
        return random_batches(input_names, shapes, types, seed)
    if os.path.isdir(path):
        return _load_images(path, input_names, shapes, batch, spec, count)
    if not path.endswith(".npz"):
        raise TensorforgeError(f"{path}: calibration data must be a .npz file or a folder of images")
    return _load_npz(path, input_names, shapes, batch, types)


def random_batches(input_names, shapes: dict, types: dict | None = None, seed: int = 0, n: int = 2) -> list:
    """n feeds of random data: floats in [0, 1), integers and booleans 0 / 1 (valid token ids and
    masks); dims that are not fixed are 1."""
    rng = np.random.default_rng(seed)

    def one(name):
        shp = [d if _fixed(d) else 1 for d in shapes[name]]
        dt = np.dtype((types or {}).get(name, np.float32))
        return rng.integers(0, 2, shp).astype(dt) if dt.kind in "iub" else rng.random(shp, np.float32).astype(dt)
    return [{name: one(name) for name in input_names} for _ in range(n)]


def model_inputs(model) -> tuple[list, dict, dict]:
    """(names, {name: dims, None where not fixed}, {name: numpy dtype}) of a ModelProto's graph inputs
    that are not initializers."""
    from onnx import helper
    inits = {i.name for i in model.graph.initializer}
    ins = [i for i in model.graph.input if i.name not in inits]
    shapes = {i.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                       for d in i.type.tensor_type.shape.dim] for i in ins}
    types = {i.name: helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in ins}
    return [i.name for i in ins], shapes, types
