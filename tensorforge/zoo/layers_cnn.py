"""Conv-net layers of the zoo's GraphBuilder, evaluated eagerly in numpy to calibrate BN.

A BatchNormalization with made-up statistics is an affine map that neither centers nor scales,
so deep SiLU stacks blow up or fade out. A trained net's BN statistics match its activations:
we emulate that by running the conv path on a few random calibration images while building
(float64, so that the result does not depend on the BLAS) and setting running_mean/var from the
actual per-channel statistics (with jitter).
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x, pad, wrap, fill=0.0):
    widths = ((0, 0), (0, 0), (pad, pad), (pad, pad))
    return np.pad(x, widths, mode="wrap") if wrap else np.pad(x, widths, constant_values=fill)


def conv2d(x, w, b, stride, pad, group, wrap=False):
    """Grouped Conv2d on NCHW float64 arrays (im2col + batched matmul).

    wrap: circular padding, so that a small calibration image acts like the inside of a big one.
    """
    n, c = x.shape[:2]
    o, cg, k, _ = w.shape
    if k == 1 and group == 1 and pad == 0:  # pointwise: one matmul, no im2col
        xs, w2 = x[:, :, ::stride, ::stride], w.reshape(o, c).astype(np.float64)
        # one 2-D GEMM per image: numpy's broadcast matmul is much slower here
        y = np.stack([w2 @ xi.reshape(c, -1) for xi in xs]).reshape(n, o, *xs.shape[2:])
        return y if b is None else y + b[:, None, None]
    xp = _pad(x, pad, wrap)
    if group == c == o:  # depthwise: k*k broadcast multiply-adds (tiny batched matmuls are slow)
        w64 = w.astype(np.float64)
        ho, wo = (xp.shape[2] - k) // stride + 1, (xp.shape[3] - k) // stride + 1
        y = np.zeros((n, c, ho, wo))
        for i in range(k):
            for j in range(k):
                tap = xp[:, :, i:i + stride * (ho - 1) + 1:stride,
                         j:j + stride * (wo - 1) + 1:stride]
                y += tap * w64[:, 0, i, j][:, None, None]
        return y if b is None else y + b[:, None, None]
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    ho, wo = win.shape[2:4]
    cols = win.reshape(n, group, cg, ho, wo, k, k).transpose(1, 0, 3, 4, 2, 5, 6)
    cols = cols.reshape(group, n * ho * wo, cg * k * k)
    wm = w.astype(np.float64).reshape(group, o // group, cg * k * k).transpose(0, 2, 1)
    y = (cols[0] @ wm[0])[None] if group == 1 else cols @ wm
    y = y.reshape(group, n, ho, wo, o // group).transpose(1, 0, 4, 2, 3)
    y = y.reshape(n, o, ho, wo)
    return y if b is None else y + b[:, None, None]


def maxpool2d(x, k, stride, pad, wrap=False):
    xp = _pad(x, pad, wrap, -np.inf)
    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride].max((-2, -1))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class ConvLayers:
    """CNN layer methods; mixed into GraphBuilder (uses its node/param/const/init/uniform)."""

    def calibrate(self, name: str, size: int, image: int, samples: int = 64):
        """Give NCHW input `name` random [batch, C, size, size] calibration images.

        batch is chosen so that the stride-32 feature maps hold about `samples` positions (the
        cost is about the same for any size). When size < image (to save time), padding is
        circular in the eager path.
        """
        batch = max(2, math.ceil(samples / max(1, size // 32) ** 2))
        rng = np.random.default_rng([self.seed, 1])  # its own stream: weights don't depend on it
        self.val[name] = rng.uniform(-1.0, 1.0, (batch, self.ch[name], size, size))
        self.calib_wrap = size < image

    def _eval(self, y, fn, *xs):
        """Record fn(values of xs) as y's value when all xs have one."""
        if all(x in self.val for x in xs):
            self.val[y] = fn(*(self.val[x] for x in xs))
        return y

    def _keep_ch(self, x, y):
        if x in self.ch:
            self.ch[y] = self.ch[x]
        return y

    def conv(self, x, cout, k, stride=1, pad=None, group=1, bias=False, local="conv", gain=2.0):
        """Conv2d, He-uniform weights (fan_in, times `gain`); bias: False, True or values."""
        cin = self.ch[x]
        pad = k // 2 if pad is None else pad
        with self.module(local) as mod:
            w = self.init((cout, cin // group, k, k), math.sqrt(gain / (cin // group * k * k)))
            ins = [x, self.param("weight", w)]
            bv = None
            if bias is not False:
                bv = self.init((cout,), 0.02) if bias is True else np.asarray(bias, np.float32)
                ins.append(self.param("bias", bv))
        y = self.node("Conv", ins, exact=mod, kernel_shape=[k, k], strides=[stride, stride],
                      pads=[pad] * 4, group=group, dilations=[1, 1])
        self.ch[y] = cout
        wrap = self.calib_wrap
        return self._eval(y, lambda v: conv2d(v, w, bv, stride, pad, group, wrap), x)

    def bn(self, x, local="bn", eps=1e-5, momentum=0.9):
        """BatchNormalization (inference form), statistics calibrated on the eager value."""
        c = self.ch[x]
        if x in self.val:
            v = self.val[x]
            mean, var = v.mean((0, 2, 3)), v.var((0, 2, 3))
            # shrink toward the layer average: few samples underestimate some variances, and
            # an underestimate amplifies (and compounds through SiLU layers)
            var = 0.7 * var + 0.3 * var.mean() + 1e-6
        else:
            mean, var = np.zeros(c), np.ones(c)
        with self.module(local) as mod:
            g = self.uniform((c,), 0.8, 1.2)
            beta = self.init((c,), 0.05)
            rm = (mean + self.init((c,), 0.1) * np.sqrt(var)).astype(np.float32)
            rv = (var * self.uniform((c,), 0.7, 1.4)).astype(np.float32)
            ins = [x, self.param("weight", g), self.param("bias", beta),
                   self.param("running_mean", rm), self.param("running_var", rv)]
        y = self.node("BatchNormalization", ins, exact=mod, epsilon=eps, momentum=momentum)

        def ref(v):
            scale = (g / np.sqrt(rv.astype(np.float64) + eps))[:, None, None]
            return (v - rm[:, None, None]) * scale + beta[:, None, None]
        return self._eval(self._keep_ch(x, y), ref, x)

    def relu(self, x, local="relu"):
        y = self._keep_ch(x, self.node("Relu", [x], local))
        return self._eval(y, lambda v: np.maximum(v, 0.0), x)

    def clip(self, x, lo=0.0, hi=6.0, local="clip"):
        """ReLU6 as Clip with min/max inputs (opset 11+)."""
        y = self._keep_ch(x, self.node("Clip", [x, self.const(lo), self.const(hi)], local))
        return self._eval(y, lambda v: np.clip(v, lo, hi), x)

    def sigmoid(self, x, local="Sigmoid"):
        return self._eval(self._keep_ch(x, self.node("Sigmoid", [x], local)), _sigmoid, x)

    def silu(self, x, local="act"):
        """SiLU as Sigmoid then Mul, the way exporters emit it."""
        with self.module(local):
            s = self.sigmoid(x)
            return self._eval(self._keep_ch(x, self.node("Mul", [x, s])), np.multiply, x, s)

    def maxpool(self, x, k, stride, pad, local="maxpool"):
        y = self._keep_ch(x, self.node("MaxPool", [x], local, kernel_shape=[k, k],
                                       strides=[stride, stride], pads=[pad] * 4))
        return self._eval(y, lambda v: maxpool2d(v, k, stride, pad, self.calib_wrap), x)

    def gap(self, x, local="avgpool"):
        return self._keep_ch(x, self.node("GlobalAveragePool", [x], local))

    def flatten(self, x, local="flatten"):
        return self.node("Flatten", [x], local, axis=1)

    def concat(self, xs, axis, local="Concat"):
        y = self.node("Concat", list(xs), local, axis=axis)
        if axis == 1 and all(x in self.ch for x in xs):
            self.ch[y] = sum(self.ch[x] for x in xs)
            self._eval(y, lambda *vs: np.concatenate(vs, axis=1), *xs)
        return y

    def split(self, x, sizes, axis, local="Split"):
        """Split with sizes as an input (opset 13+)."""
        ys = self.node("Split", [x, self.const(sizes, "int64")], local, n_out=len(sizes),
                       axis=axis)
        if axis == 1 and x in self.ch:
            self.ch.update(zip(ys, sizes))
            if x in self.val:
                parts = np.split(self.val[x], np.cumsum(sizes)[:-1], axis=1)
                self.val.update(zip(ys, parts))
        return ys

    def resize2x(self, x, local="Upsample"):
        """Nearest 2x upsample: Resize with an empty roi and a `scales` input."""
        roi = self.const(np.zeros((0,), np.float32))
        scales = self.const([1.0, 1.0, 2.0, 2.0])
        y = self._keep_ch(x, self.node(
            "Resize", [x, roi, scales], local, mode="nearest", nearest_mode="floor",
            coordinate_transformation_mode="asymmetric", cubic_coeff_a=-0.75))
        return self._eval(y, lambda v: v.repeat(2, axis=2).repeat(2, axis=3), x)
