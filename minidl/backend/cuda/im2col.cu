// im2col / col2im on the GPU: the same functions as minidl/backend/reference.py.
//
// Notation: N batch, C channels, H, W input, KH, KW kernel, S stride, P padding, D dilation,
// OH, OW output, K = C*KH*KW. Output pixel (n, i, j) reads the input cells
//     h = SH*i - PH + DH*p   (p < KH)        w = SW*j - PW + DW*q   (q < KW)
// Arrays are C-contiguous; the Python side (minidl/backend/cupy_gpu.py) makes them so.
//
// Threads and determinism:
//   im2col  one thread per entry of cols (N, K, OH*OW): a copy, so exact.
//   col2im  GATHER form, one thread per input pixel (n, c, h, w): the thread finds every
//           (i, p) with SH*i + DH*p = h + PH (and the same for (j, q)) and sums those entries
//           of cols itself. No two threads write the same cell, so no atomics, and the sum is
//           taken in a fixed order (p-major, then q: the order of the reference's loop), so
//           results are the same from run to run, bit for bit.
//
// The file needs no #include, so NVRTC (CuPy's RawModule) and `nvcc -ptx` compile it alike.
// Each kernel is a template instantiated for float and double under explicit extern "C"
// names (im2col_f32, im2col_f64, ...): plain names in the PTX, no C++ name mangling.
// Every kernel is a grid-stride loop over its `total` work items.

#define MINIDL_GRID_STRIDE_LOOP(e, total)                                                    \
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (total);       \
         e += (long long)blockDim.x * gridDim.x)

// cols[n, (c*KH + p)*KW + q, i*OW + j] = xpad[n, c, SH*i + DH*p, SW*j + DW*q]
// (cols is (N, K, OH*OW): one row per kernel tap, one column per output pixel)
template <typename T>
__device__ void im2col_impl(const T* __restrict__ x, T* __restrict__ cols,
                            int C, int H, int W, int KH, int KW, int SH, int SW,
                            int PH, int PW, int DH, int DW, int OH, int OW, long long total)
{
    const long long K = (long long)C * KH * KW;
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const int j = (int)(e % OW);  // output pixel (i, j); neighbouring threads: neighbouring j
        const int i = (int)((e / OW) % OH);
        const long long nk = e / ((long long)OW * OH);
        const int col = (int)(nk % K);  // kernel tap (c, p, q)
        const long long n = nk / K;
        const int q = col % KW;
        const int p = (col / KW) % KH;
        const int c = col / (KW * KH);
        const int h = SH * i - PH + DH * p;  // unpadded input coordinates
        const int w = SW * j - PW + DW * q;
        cols[e] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : T(0);
    }
}

// dx[n, c, h, w] = sum of cols[n, (c*KH + p)*KW + q, i*OW + j]
//                  over every (i, j, p, q) with SH*i + DH*p = h + PH, SW*j + DW*q = w + PW
template <typename T>
__device__ void col2im_impl(const T* __restrict__ cols, T* __restrict__ dx,
                            int C, int H, int W, int KH, int KW, int SH, int SW,
                            int PH, int PW, int DH, int DW, int OH, int OW, long long total)
{
    const long long K = (long long)C * KH * KW;
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const int c = (int)((e / ((long long)W * H)) % C);
        const long long n = e / ((long long)W * H * C);
        const int hp = h + PH, wp = w + PW;  // padded coordinates
        T sum = T(0);
        for (int p = 0; p < KH; ++p) {
            const int ri = hp - DH * p;  // = SH*i: a window row only if it is a multiple of SH
            if (ri < 0) break;  // larger p only go further up
            if (ri % SH != 0 || ri / SH >= OH) continue;
            const int i = ri / SH;
            for (int q = 0; q < KW; ++q) {
                const int rj = wp - DW * q;
                if (rj < 0) break;
                if (rj % SW != 0 || rj / SW >= OW) continue;
                const int j = rj / SW;
                sum += cols[((n * K + (c * KH + p) * KW + q) * OH + i) * OW + j];
            }
        }
        dx[e] = sum;
    }
}

#define MINIDL_IM2COL_KERNELS(SUFFIX, T)                                                     \
    extern "C" __global__ void im2col_##SUFFIX(                                              \
        const T* __restrict__ x, T* __restrict__ cols, int C, int H, int W, int KH, int KW,  \
        int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW, long long total)     \
    {                                                                                        \
        im2col_impl<T>(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total);     \
    }                                                                                        \
    extern "C" __global__ void col2im_##SUFFIX(                                              \
        const T* __restrict__ cols, T* __restrict__ dx, int C, int H, int W, int KH, int KW, \
        int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW, long long total)     \
    {                                                                                        \
        col2im_impl<T>(cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total);    \
    }

MINIDL_IM2COL_KERNELS(f32, float)
MINIDL_IM2COL_KERNELS(f64, double)
