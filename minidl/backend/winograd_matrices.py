"""The matrices of Winograd's minimal filtering F(4, 3), in 2-D F(4x4, 3x3).

For the points 0, 1, -1, 2, -2 and infinity (docs/gradients/conv2d_winograd.md derives them):
``y = AT @ [(G @ g) * (BT @ d)]`` is the 4-output correlation
``y[i] = d[i] g[0] + d[i+1] g[1] + d[i+2] g[2]`` of a 6-input patch d with a 3-tap filter g,
and the 2-D tile ``AT @ [(G @ w @ G.T) * (BT @ d @ BT.T)] @ AT.T`` is the 4x4 output of a 3x3
filter w on the 6x6 patch d. Used by the Winograd route (minidl/ops/conv_winograd.py) and by the
kernels of its transforms (reference.py, numba_cpu.py).
"""
import numpy as np

TILE = 4  # m: outputs per tile side; the patch side is m + 2 = 6
POINTS = (TILE + 2) ** 2  # 36 Winograd points (a, b) per tile: its 6x6 patch
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=float)
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]])
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=float)
