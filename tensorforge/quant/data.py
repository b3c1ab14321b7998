"""Calibration data: .npz files (name -> array, batches along dim 0), a folder of images with a
preprocessing spec, or random data (placeholder scales)."""
from __future__ import annotations

import logging
import os

import numpy as np

from ..errors import TensorforgeError

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


def preprocess(img, spec: dict) -> np.ndarray:
    """A PIL image -> float32 CHW/HWC array per the spec."""
    from PIL import Image
    img = img.convert("RGB")
    if spec["resize"]:
        w, h = img.size
        r = spec["resize"] / min(w, h)
        img = img.resize((max(1, round(w * r)), max(1, round(h * r))), Image.BILINEAR)
    if spec["crop"]:
        w, h = img.size
        c = spec["crop"]
        left, top = (w - c) // 2, (h - c) // 2
        img = img.crop((left, top, left + c, top + c))
    a = np.asarray(img, np.float32) / spec["scale"]
    a = (a - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    return a.transpose(2, 0, 1) if spec["layout"] == "NCHW" else a


def load_batches(path: str | None, input_names, shapes: dict, batch: int = 1, spec: str | None = None,
                 count: int = 16, seed: int = 0, types: dict | None = None):
    """A list of feeds {input: array}; random data (with a warning) when path is None (integer inputs,
    `types` {input: numpy dtype}, get 0 / 1: valid token ids and masks)."""
    if path is None:
        log.warning("quantize: no calibration data; random inputs give placeholder scales "
                    "(fine for performance work, meaningless for accuracy)")
        rng = np.random.default_rng(seed)

        def one(n):
            shp = [d if isinstance(d, int) and d > 0 else 1 for d in shapes[n]]
            dt = np.dtype((types or {}).get(n, np.float32))
            return rng.integers(0, 2, shp).astype(dt) if dt.kind in "iub" else rng.random(shp, np.float32).astype(dt)
        return [{n: one(n) for n in input_names} for _ in range(2)]
    if os.path.isdir(path):
        from PIL import Image
        files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXT))[:count * batch]
        if not files:
            raise TensorforgeError(f"{path}: no images ({', '.join(IMAGE_EXT)})")
        sp = parse_spec(spec)
        arr = np.stack([preprocess(Image.open(os.path.join(path, f)), sp) for f in files])
        return [{input_names[0]: arr[i:i + batch]} for i in range(0, len(arr), batch)]
    if not path.endswith(".npz"):
        raise TensorforgeError(f"{path}: calibration data must be a .npz file or a folder of images")
    try:
        z = np.load(path)
    except OSError as e:
        raise TensorforgeError(f"{path}: cannot read ({e})") from None
    missing = [n for n in input_names if n not in z.files]
    if missing:
        raise TensorforgeError(f"{path}: no array for input(s) {', '.join(missing)} (has {', '.join(z.files)})")
    n = len(z[input_names[0]])
    return [{k: z[k][i:i + batch] for k in input_names} for i in range(0, n, batch)]
