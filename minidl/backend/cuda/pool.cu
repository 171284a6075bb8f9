// Max- and average-pooling on the GPU: the same functions as minidl/backend/reference.py.
//
// Notation: x (N,C,H,W), y (N,C,OH,OW), kernel (KH,KW), stride S, padding P, dilation D.
// The window of output (i, j) covers the input cells
//     h = SH*i - PH + DH*p   (p < KH)        w = SW*j - PW + DW*q   (q < KW)
// Arrays are C-contiguous; a "plane" is one (n, c) image of H*W (or OH*OW) values.
//
// Threads and determinism:
//   maxpool2d_forward_*        one thread per output cell: scans its window in the reference's
//                              order (p-major, then q) with the reference's rule (first of equal
//                              maxima wins, the last NaN wins, start at the first in-bounds cell).
//   maxpool2d_backward_*       a GATHER, without atomics (see below).
//   avgpool2d_forward_*        one thread per output cell: window sum (p-major, then q) / divisor.
//   avgpool2d_backward_*       GATHER form, one thread per input pixel: it finds the windows that
//                              contain it (SH*i + p = h + PH, ...) and sums dy / divisor of each,
//                              in the reference's order (p-major, then q).
// No thread writes a cell another thread writes, so results are the same run after run.
//
// Max-pool backward. The kernel signature (dy, argmax, x_shape) carries no window geometry, so
// an input pixel cannot list "the windows that contain it". Instead the Python side makes one
// int64 key per output cell,
//     key = (plane*H*W + argmax) * OH*OW + o         o = i*OW + j, the cell's index in its plane
// (unique, so any sort gives the same order) and sorts the keys: the cells that picked input
// pixel k = plane*H*W + argmax then form one run keys[s0 .. s1), in increasing o.
//   maxpool2d_backward_segments   one thread per sorted key: the first key of each run records
//                                 where the run starts (one writer per pixel).
//   maxpool2d_backward_gather_*   one thread per input pixel: sums dy over its run, in increasing
//                                 o, the order in which the reference's np.add.at adds them.
//
// The file needs no #include, so NVRTC (CuPy's RawModule) and `nvcc -ptx` compile it alike.
// Templates are instantiated for float and double under explicit extern "C" names.

#define MINIDL_GRID_STRIDE_LOOP(e, total)                                                    \
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (total);       \
         e += (long long)blockDim.x * gridDim.x)

__device__ inline int imin(int a, int b) { return a < b ? a : b; }
__device__ inline int imax(int a, int b) { return a > b ? a : b; }

template <typename T> struct Limits;
template <> struct Limits<float> {
    static __device__ float neg_inf() { return __int_as_float(0xff800000); }
};
template <> struct Limits<double> {
    static __device__ double neg_inf() { return __longlong_as_double((long long)0xfff0000000000000ULL); }
};

// y[n,c,i,j] = max_{p,q} xpad[n,c, SH*i + DH*p, SW*j + DW*q] (padding -inf); argmax = h*W + w
template <typename T>
__device__ void maxpool2d_forward_impl(const T* __restrict__ x, T* __restrict__ y,
                                       long long* __restrict__ argmax,
                                       int H, int W, int KH, int KW, int SH, int SW, int PH,
                                       int PW, int DH, int DW, int OH, int OW, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const int j = (int)(e % OW);
        const int i = (int)((e / OW) % OH);
        const long long plane = e / ((long long)OW * OH);
        const T* xs = x + plane * H * W;
        const int h0 = SH * i - PH, w0 = SW * j - PW;  // tap (0, 0), maybe in the padding
        // PyTorch's starting argmax: the first in-bounds cell (whole dilation steps skipped)
        const int h_first = h0 + DH * ((imax(-h0, 0) + DH - 1) / DH);
        const int w_first = w0 + DW * ((imax(-w0, 0) + DW - 1) / DW);
        long long best_index = (long long)h_first * W + w_first;
        T best = Limits<T>::neg_inf();
        for (int p = 0; p < KH; ++p) {
            const int h = h0 + DH * p;
            if (h < 0) continue;
            if (h >= H) break;  // padding (-inf) never wins
            for (int q = 0; q < KW; ++q) {
                const int w = w0 + DW * q;
                if (w < 0) continue;
                if (w >= W) break;
                const T v = xs[h * W + w];
                if (v > best || v != v) {  // strictly greater, or NaN
                    best = v;
                    best_index = (long long)h * W + w;
                }
            }
        }
        y[e] = best;
        argmax[e] = best_index;
    }
}

// The first key of each run of equal pixels (key / OHW) records where that run starts.
extern "C" __global__ void maxpool2d_backward_segments(const long long* __restrict__ keys,
                                                       long long* __restrict__ run_start,
                                                       long long OHW, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(s, total) {
        const long long pixel = keys[s] / OHW;
        if (s == 0 || keys[s - 1] / OHW != pixel) run_start[pixel] = s;
    }
}

// dx[pixel] = sum of dy over the output cells whose argmax is this pixel (run_start < 0: none)
template <typename T>
__device__ void maxpool2d_backward_gather_impl(const T* __restrict__ dy,
                                               const long long* __restrict__ keys,
                                               const long long* __restrict__ run_start,
                                               T* __restrict__ dx, long long HW, long long OHW,
                                               long long num_keys, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(pixel, total) {
        T sum = T(0);
        const long long first = pixel * OHW;  // keys of this pixel lie in [first, first + OHW)
        const T* dys = dy + (pixel / HW) * OHW;  // dy's plane
        for (long long s = run_start[pixel]; s >= 0 && s < num_keys && keys[s] < first + OHW; ++s)
            sum += dys[keys[s] - first];
        dx[pixel] = sum;
    }
}

// Along one axis, window i spans [start, end) = [S*i - P, min(S*i - P + K, size + P)): the
// count of its cells in the padded input, or (count_include_pad = 0) in the input only.
__device__ inline int avgpool_count(int i, int K, int S, int P, int size, int count_include_pad)
{
    const int start = S * i - P;
    const int end = imin(start + K, size + P);
    return count_include_pad ? end - start : imin(end, size) - imax(start, 0);
}

template <typename T>
__device__ inline T avgpool_divisor(int i, int j, int H, int W, int KH, int KW, int SH, int SW,
                                    int PH, int PW, int count_include_pad, int has_override,
                                    T divisor_override)
{
    if (has_override) return divisor_override;
    const long long count = (long long)avgpool_count(i, KH, SH, PH, H, count_include_pad)
                            * avgpool_count(j, KW, SW, PW, W, count_include_pad);
    return (T)count;
}

// y[n,c,i,j] = (sum_{p,q} xpad[n,c, SH*i + p, SW*j + q]) / divisor[i,j]   (padding 0)
template <typename T>
__device__ void avgpool2d_forward_impl(const T* __restrict__ x, T* __restrict__ y,
                                       int H, int W, int KH, int KW, int SH, int SW, int PH,
                                       int PW, int OH, int OW, int count_include_pad,
                                       int has_override, T divisor_override, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const int j = (int)(e % OW);
        const int i = (int)((e / OW) % OH);
        const long long plane = e / ((long long)OW * OH);
        const T* xs = x + plane * H * W;
        const int h0 = SH * i - PH, w0 = SW * j - PW;
        T sum = T(0);
        for (int p = 0; p < KH; ++p) {
            const int h = h0 + p;
            if (h < 0) continue;
            if (h >= H) break;  // padding adds 0
            for (int q = 0; q < KW; ++q) {
                const int w = w0 + q;
                if (w < 0) continue;
                if (w >= W) break;
                sum += xs[h * W + w];
            }
        }
        y[e] = sum / avgpool_divisor<T>(i, j, H, W, KH, KW, SH, SW, PH, PW, count_include_pad,
                                        has_override, divisor_override);
    }
}

// dx[n,c,h,w] = sum over the windows (i, j) that contain (h, w) of dy[n,c,i,j] / divisor[i,j]
template <typename T>
__device__ void avgpool2d_backward_impl(const T* __restrict__ dy, T* __restrict__ dx,
                                        int H, int W, int KH, int KW, int SH, int SW, int PH,
                                        int PW, int OH, int OW, int count_include_pad,
                                        int has_override, T divisor_override, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const int w = (int)(e % W);
        const int h = (int)((e / W) % H);
        const long long plane = e / ((long long)W * H);
        const T* dys = dy + plane * OH * OW;
        const int hp = h + PH, wp = w + PW;  // padded coordinates
        T sum = T(0);
        for (int p = 0; p < KH; ++p) {
            const int ri = hp - p;  // = SH*i for the window whose tap p is this row
            if (ri < 0) break;
            if (ri % SH != 0 || ri / SH >= OH) continue;
            const int i = ri / SH;
            for (int q = 0; q < KW; ++q) {
                const int rj = wp - q;
                if (rj < 0) break;
                if (rj % SW != 0 || rj / SW >= OW) continue;
                const int j = rj / SW;
                sum += dys[i * OW + j] / avgpool_divisor<T>(i, j, H, W, KH, KW, SH, SW, PH, PW,
                                                            count_include_pad, has_override,
                                                            divisor_override);
            }
        }
        dx[e] = sum;
    }
}

#define MINIDL_POOL_KERNELS(SUFFIX, T)                                                        \
    extern "C" __global__ void maxpool2d_forward_##SUFFIX(                                    \
        const T* __restrict__ x, T* __restrict__ y, long long* __restrict__ argmax, int H,    \
        int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW, \
        long long total)                                                                      \
    {                                                                                         \
        maxpool2d_forward_impl<T>(x, y, argmax, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, \
                                  total);                                                     \
    }                                                                                         \
    extern "C" __global__ void maxpool2d_backward_gather_##SUFFIX(                            \
        const T* __restrict__ dy, const long long* __restrict__ keys,                         \
        const long long* __restrict__ run_start, T* __restrict__ dx, long long HW,            \
        long long OHW, long long num_keys, long long total)                                   \
    {                                                                                         \
        maxpool2d_backward_gather_impl<T>(dy, keys, run_start, dx, HW, OHW, num_keys, total); \
    }                                                                                         \
    extern "C" __global__ void avgpool2d_forward_##SUFFIX(                                    \
        const T* __restrict__ x, T* __restrict__ y, int H, int W, int KH, int KW, int SH,     \
        int SW, int PH, int PW, int OH, int OW, int count_include_pad, int has_override,      \
        T divisor_override, long long total)                                                  \
    {                                                                                         \
        avgpool2d_forward_impl<T>(x, y, H, W, KH, KW, SH, SW, PH, PW, OH, OW,                 \
                                  count_include_pad, has_override, divisor_override, total);  \
    }                                                                                         \
    extern "C" __global__ void avgpool2d_backward_##SUFFIX(                                   \
        const T* __restrict__ dy, T* __restrict__ dx, int H, int W, int KH, int KW, int SH,   \
        int SW, int PH, int PW, int OH, int OW, int count_include_pad, int has_override,      \
        T divisor_override, long long total)                                                  \
    {                                                                                         \
        avgpool2d_backward_impl<T>(dy, dx, H, W, KH, KW, SH, SW, PH, PW, OH, OW,              \
                                   count_include_pad, has_override, divisor_override, total); \
    }

MINIDL_POOL_KERNELS(f32, float)
MINIDL_POOL_KERNELS(f64, double)
