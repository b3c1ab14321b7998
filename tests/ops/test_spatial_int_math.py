"""pool_out_dim on plain ints (the runtime's path: no sympy) equals the symbolic formula."""
import itertools

from tensorforge.ir.lazy import sympy
from tensorforge.ir.symbolic import norm
from tensorforge.ops import spatial


def _symbolic(inp, k, s, d, pb, pe, ceil_mode, auto_pad):
    if auto_pad == "SAME_UPPER":
        return norm(sympy.ceiling(sympy.Symbol("n") / s).subs("n", inp))
    num = sympy.Symbol("n") + pb + pe - ((k - 1) * d + 1)
    out = int(((sympy.ceiling(num / s) if ceil_mode else sympy.floor(num / s)) + 1).subs("n", inp))
    return out - 1 if ceil_mode and (out - 1) * s >= inp + pb else out


def test_integer_output_lengths_match_the_symbolic_formula():
    for case in itertools.product(range(1, 10), (1, 2, 3), (1, 2, 3), (1, 2), (0, 1, 2), (0, 2), (0, 1),
                                  ("NOTSET", "SAME_UPPER")):
        got = spatial.pool_out_dim(*case)
        assert type(got) is int and got == int(_symbolic(*case)), case
