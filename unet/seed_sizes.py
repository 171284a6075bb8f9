r"""Input sizes of the seed models (``unet/zhixuhao.py``, ``tf_unet.py``, ``bn_unet.py``,
``mini_unet.py``): which sizes fit, what comes out, and a clear error for the others.

Every one of them is a U: ``levels`` levels, each of whose convolution blocks takes ``shrink``
pixels off a size (0 with 'same' padding; ``2 * (filter_size - 1)`` for two unpadded
convolutions), a down-sampling by ``pool`` between levels that must see a size divisible by
``pool`` (else a row would be dropped and the decoder could not line up with the encoder), and
an up-sampling by ``pool`` on the way back. For ONE spatial dimension::

    n -> n - shrink -> (n - shrink) / pool -> ... (contracting)  ... x pool - shrink (expanding)

The sizes that fit are those whose contracting path reaches the bottom level at a whole size
``b``: ``n = from_bottom(b)``, with ``from_bottom`` linear in ``b`` (slope ``pool**(levels-1)``).
"""
import numbers

from .planner import SizeError

__all__ = ["SizeRule", "SizedByRule"]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


class SizeRule:
    """The size rule of one model: ``SizeRule("ZhixuhaoUNet", levels=5, shrink=0, pool=2)``."""

    def __init__(self, model, levels, shrink=0, pool=2):
        self.model, self.levels, self.shrink, self.pool = model, levels, shrink, pool

    # --------------------------------------------------------------- one dimension
    def _try(self, n):
        """The output size for input size ``n``, or a string saying why ``n`` does not fit."""
        if n < 1:
            return "sizes must be positive"
        size = n
        for level in range(1, self.levels):                      # contracting path
            size -= self.shrink
            if size < 1:
                return f"the feature map shrinks to {size} at level {level}"
            if size % self.pool:
                return (f"down-sampling {level} would see the size {size}, which is not "
                        f"divisible by {self.pool}")
            size //= self.pool
        size -= self.shrink
        if size < 1:
            return f"the feature map shrinks to {size} at the bottom level {self.levels}"
        for level in range(self.levels - 1, 0, -1):              # expanding path
            size = self.pool * size - self.shrink
            if size < 1:
                return f"the feature map shrinks to {size} on the way up at level {level}"
        return size

    def _from_bottom(self, b):
        """The input size whose contracting path reaches the bottom level at size ``b``."""
        for _ in range(self.levels - 1):
            b = self.pool * b + self.shrink
        return b

    def _valid_at_least(self, n):
        scale, base = self.pool ** (self.levels - 1), self._from_bottom(0)
        b = max(1, -(-(n - base) // scale))                      # ceil
        while isinstance(self._try(self._from_bottom(b)), str):
            b += 1       # too small for the convolutions; a larger bottom always fits
        return self._from_bottom(b)

    def _valid_below(self, n):
        scale, base = self.pool ** (self.levels - 1), self._from_bottom(0)
        b = (n - 1 - base) // scale                              # floor: strictly below n
        while b >= 1 and isinstance(self._try(self._from_bottom(b)), str):
            b -= 1
        return self._from_bottom(b) if b >= 1 else None

    def output_size_1d(self, n, what="input size"):
        if not _is_int(n):
            raise TypeError(f"{self.model}: {what} must be an int, got {n!r}")
        n = int(n)
        out = self._try(n)
        if not isinstance(out, str):
            return out
        below, above = self._valid_below(n), self._valid_at_least(max(n, 1))
        nearest = (f"it is too small: the smallest size it takes is {above}" if below is None
                   else f"the nearest sizes it takes are {below} and {above}")
        raise SizeError(f"{self.model} cannot take an {what} of {n}: {out}; {nearest} "
                        f"(see {self.model}.valid_input_size)")

    # --------------------------------------------------------------- int or (H, W)
    def _pair(self, value, name):
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(f"{self.model}: {name} must be an int or a pair (H, W), got {value!r}")
            return True
        return False

    def output_size(self, input_size):
        """Output size for an int (square) or an (H, W) input size; raises for unusable sizes."""
        if self._pair(input_size, "input_size"):
            return tuple(self.output_size_1d(n, f"input {what}")
                         for n, what in zip(input_size, ("height", "width")))
        return self.output_size_1d(input_size)

    def valid_input_size(self, min_size):
        """The smallest input size >= ``min_size`` (int or (H, W)) that the model takes."""
        if self._pair(min_size, "min_size"):
            return tuple(self.valid_input_size(n) for n in min_size)
        if not _is_int(min_size) or min_size < 1:
            raise ValueError(f"{self.model}.valid_input_size: min_size must be a positive int, "
                             f"got {min_size!r}")
        return self._valid_at_least(int(min_size))


class SizedByRule:
    """What a seed model's ``self._sizes`` (a :class:`SizeRule`) answers, as its methods."""

    def output_size(self, input_size):
        """The output size for an int or an (H, W) input size; a clear error for unusable sizes."""
        return self._sizes.output_size(input_size)

    def valid_input_size(self, min_size):
        """The smallest usable input size >= ``min_size`` (int or (H, W))."""
        return self._sizes.valid_input_size(min_size)
