// Fused softmax + cross-entropy with class-index targets, on the GPU.
// The specification is the NumPy pair softmax_cross_entropy_forward / _backward written out in
// minidl/backend/cupy_gpu.py and docs/gpu.md (the class-index CrossEntropy op of
// minidl/ops/loss.py with label_smoothing = 0).
//
// Layout: logits x (N,C,*d) seen as (N, C, S), S = prod(d) (S = 1 for (N,C) scores), so the
// scores of element e = (n, s) sit at x[(n*C + c)*S + s], c = 0..C-1, a stride of S apart.
// target (N,*d) int64 class indices; weight (C,) (all ones when the op has no weight).
//
// Threads: one thread per element (pixel) e, looping over the C classes: adjacent threads read
// adjacent pixels, so every read of a class plane is coalesced. Each thread writes only its own
// loss (forward) or its own C gradient entries (backward): no atomics, deterministic.
//
// Per element, as the reference (log_softmax_array, class_targets, CrossEntropy):
//     m = max_c x_c (NaN propagates)      log_sum = log sum_c exp(x_c - m)
//     logp_c = (x_c - m) - log_sum
//     valid = !has_ignore || target != ignore_index      t = valid ? target : 0
//     w = weight[t] * valid
//     forward   loss = -w * logp_t
//     backward  dx_c = (dy * w) * (exp(logp_c) - [c == t])      (dx = 0 where not valid)
// The backward recomputes m and log_sum from x (two extra passes over C) instead of saving a
// (N,C,*d) softmax: the op only keeps x, which autograd holds anyway.
// A valid target outside [0, C) (which minidl.functional rejects) gives NaN, never a wild read.
//
// The file needs no #include, so NVRTC (CuPy's RawModule) and `nvcc -ptx` compile it alike.

#define MINIDL_GRID_STRIDE_LOOP(e, total)                                                    \
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < (total);       \
         e += (long long)blockDim.x * gridDim.x)

template <typename T> struct Math;
template <> struct Math<float> {
    static __device__ float exp(float v) { return expf(v); }
    static __device__ float log(float v) { return logf(v); }
    static __device__ float nan() { return __int_as_float(0x7fc00000); }
};
template <> struct Math<double> {
    static __device__ double exp(double v) { return ::exp(v); }
    static __device__ double log(double v) { return ::log(v); }
    static __device__ double nan() { return __longlong_as_double(0x7ff8000000000000LL); }
};

// m = max_c xs[c*S] and log_sum = log sum_c exp(xs[c*S] - m), for the C scores of one element
template <typename T>
__device__ inline void log_softmax_shift(const T* __restrict__ xs, int C, long long S,
                                         T& m, T& log_sum)
{
    m = xs[0];
    for (int c = 1; c < C; ++c) {
        const T v = xs[c * S];
        if (v > m || v != v) m = v;  // as NumPy's max: a NaN is kept
    }
    T sum = T(0);
    for (int c = 0; c < C; ++c) sum += Math<T>::exp(xs[c * S] - m);
    log_sum = Math<T>::log(sum);
}

template <typename T>
__device__ void softmax_xent_forward_impl(const T* __restrict__ x,
                                          const long long* __restrict__ target,
                                          const T* __restrict__ weight, T* __restrict__ loss,
                                          int C, long long S, int has_ignore,
                                          long long ignore_index, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const long long n = e / S, s = e - n * S;
        const T* xs = x + n * C * S + s;
        const bool valid = !has_ignore || target[e] != ignore_index;
        const long long t = valid ? target[e] : 0;
        if (t < 0 || t >= C) {
            loss[e] = Math<T>::nan();
            continue;
        }
        T m, log_sum;
        log_softmax_shift<T>(xs, C, S, m, log_sum);
        const T logp_t = (xs[t * S] - m) - log_sum;
        const T w = weight[t] * (T)(valid ? 1 : 0);
        loss[e] = -w * logp_t;
    }
}

template <typename T>
__device__ void softmax_xent_backward_impl(const T* __restrict__ dy, const T* __restrict__ x,
                                           const long long* __restrict__ target,
                                           const T* __restrict__ weight, T* __restrict__ dx,
                                           int C, long long S, int has_ignore,
                                           long long ignore_index, long long total)
{
    MINIDL_GRID_STRIDE_LOOP(e, total) {
        const long long n = e / S, s = e - n * S;
        const T* xs = x + n * C * S + s;
        T* dxs = dx + n * C * S + s;
        const bool valid = !has_ignore || target[e] != ignore_index;
        const long long t = target[e];
        if (!valid) {  // ignored elements get no gradient (even where dy or x is inf or NaN)
            for (int c = 0; c < C; ++c) dxs[c * S] = T(0);
            continue;
        }
        if (t < 0 || t >= C) {
            for (int c = 0; c < C; ++c) dxs[c * S] = Math<T>::nan();
            continue;
        }
        T m, log_sum;
        log_softmax_shift<T>(xs, C, S, m, log_sum);
        const T scale = dy[e] * weight[t];
        for (int c = 0; c < C; ++c) {
            const T p = Math<T>::exp((xs[c * S] - m) - log_sum);  // softmax, as exp(logp)
            dxs[c * S] = scale * (p - (c == t ? T(1) : T(0)));
        }
    }
}

#define MINIDL_SOFTMAX_XENT_KERNELS(SUFFIX, T)                                                \
    extern "C" __global__ void softmax_xent_forward_##SUFFIX(                                 \
        const T* __restrict__ x, const long long* __restrict__ target,                        \
        const T* __restrict__ weight, T* __restrict__ loss, int C, long long S,               \
        int has_ignore, long long ignore_index, long long total)                              \
    {                                                                                         \
        softmax_xent_forward_impl<T>(x, target, weight, loss, C, S, has_ignore, ignore_index, \
                                     total);                                                  \
    }                                                                                         \
    extern "C" __global__ void softmax_xent_backward_##SUFFIX(                                \
        const T* __restrict__ dy, const T* __restrict__ x,                                    \
        const long long* __restrict__ target, const T* __restrict__ weight,                   \
        T* __restrict__ dx, int C, long long S, int has_ignore, long long ignore_index,       \
        long long total)                                                                      \
    {                                                                                         \
        softmax_xent_backward_impl<T>(dy, x, target, weight, dx, C, S, has_ignore,            \
                                      ignore_index, total);                                   \
    }

MINIDL_SOFTMAX_XENT_KERNELS(f32, float)
MINIDL_SOFTMAX_XENT_KERNELS(f64, double)
