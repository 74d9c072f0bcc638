/* Fused CPU kernels for training, loaded by landmarks/native.py through ctypes.
 *
 * Tensors are float32 with channels innermost (channels-last), so a channel
 * block of 8 is one 256-bit vector.  Parallel loops use OpenMP, which resolves
 * to the libgomp that torch has already loaded: one thread pool for both.
 * Every function returns 0, or -1 for a shape it does not handle (the caller
 * then takes the PyTorch path).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));
typedef int32_t m8 __attribute__((vector_size(32)));

#define LOAD(p) (*(const v8u *)(p))
#define STORE(p, v) (*(v8u *)(p) = (v))
#define MAX_CHANNELS 1024
#define MAX_ROW 4096 /* floats in one row of conv outputs: width * channels */

static inline v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }

static inline v8 select8(m8 mask, v8 yes, v8 no)
{
    return (v8)((mask & (m8)yes) | (~mask & (m8)no));
}

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* out[i] = sum over threads of partial[t * stride + offset + i], in thread order (deterministic). */
static void sum_partials(const double *partial, int threads, int64_t stride, int64_t offset, int64_t count,
                         float *out)
{
    for (int64_t i = 0; i < count; i++) {
        double total = 0;
        for (int t = 0; t < threads; t++) total += partial[(int64_t)t * stride + offset + i];
        out[i] = (float)total;
    }
}

/* ---- PReLU backward ------------------------------------------------------
 * x, grad: [rows, channels]; weight: [channels].
 * grad_x = grad where x > 0, else weight * grad;  grad_weight = sum of grad * x where x <= 0.
 * One pass over memory instead of the five that separate tensor ops take.
 */
int prelu_backward(const float *grad, const float *x, const float *weight, float *grad_x,
                   float *grad_weight, int64_t rows, int64_t channels, int threads)
{
    if (channels < 1 || channels > MAX_CHANNELS || threads < 1) return -1;
    double *partial = calloc((size_t)threads * channels, sizeof(double));
    if (!partial) return -1;
    #pragma omp parallel num_threads(threads)
    {
        double *mine = partial + (int64_t)thread_index() * channels;
        float sum[MAX_CHANNELS];
        for (int64_t c = 0; c < channels; c++) sum[c] = 0.f;
        int64_t since_flush = 0;
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *g = grad + r * channels, *v = x + r * channels;
            float *out = grad_x + r * channels;
            for (int64_t c = 0; c < channels; c++) {
                int positive = v[c] > 0.f;
                out[c] = positive ? g[c] : weight[c] * g[c];
                sum[c] += positive ? 0.f : g[c] * v[c];
            }
            if (++since_flush == 256) { /* keep float partial sums short */
                for (int64_t c = 0; c < channels; c++) { mine[c] += sum[c]; sum[c] = 0.f; }
                since_flush = 0;
            }
        }
        for (int64_t c = 0; c < channels; c++) mine[c] += sum[c];
    }
    sum_partials(partial, threads, channels, 0, channels, grad_weight);
    free(partial);
    return 0;
}

/* ---- Convolution -> PReLU -> 2x2 average pooling --------------------------
 * in: [batch, size, size, cin]; wt: [k, k, cin, cout] (cout innermost);
 * bias, slope: [cout]; pooled output: [batch, p, p, cout] with p = conv / 2,
 * conv = (size - k) / stride + 1, no padding.  The full-resolution conv and
 * PReLU outputs are never stored: backward recomputes them a row at a time.
 */
typedef struct {
    const float *in, *wt, *bias, *slope;
    int64_t size, cin, cout, k, stride, pooled;
} layer_t;

/* Pre-activations of outputs ox0 .. ox0 + nb - 1 of one conv row, channels cb*8 .. cb*8 + 7. */
static inline __attribute__((always_inline)) void conv_block(const layer_t *l, const float *in_row, float *z,
                                                            int64_t ox0, int nb, int64_t cb)
{
    const int64_t cin = l->cin, cout = l->cout, k = l->k, s = l->stride;
    v8 acc[4];
    for (int b = 0; b < nb; b++) acc[b] = LOAD(l->bias + cb * 8);
    for (int64_t ky = 0; ky < k; ky++) {
        const float *r = in_row + (ky * l->size + ox0 * s) * cin;
        const float *w = l->wt + ky * k * cin * cout + cb * 8;
        for (int64_t i = 0; i < k * cin; i++) {
            v8 wv = LOAD(w + i * cout);
            for (int b = 0; b < nb; b++) acc[b] += wv * splat(r[b * s * cin + i]);
        }
    }
    for (int b = 0; b < nb; b++) STORE(z + (ox0 + b) * cout + cb * 8, acc[b]);
}

/* conv_row for the stage-1 first layer on gray images (1 input channel, 5x5, 8 outputs):
 * the 25 weight vectors stay in registers while four outputs are summed at a time. */
static void conv_row_gray5(const layer_t *l, const float *in_row, float *z)
{
    const int64_t width = 2 * l->pooled, size = l->size, s = l->stride;
    v8 w[25];
    #pragma GCC unroll 25
    for (int t = 0; t < 25; t++) w[t] = LOAD(l->wt + t * 8);
    const v8 bias = LOAD(l->bias);
    int64_t ox = 0;
    for (; ox + 4 <= width; ox += 4) {
        v8 z0 = bias, z1 = bias, z2 = bias, z3 = bias;
        const float *r = in_row + ox * s;
        #pragma GCC unroll 5
        for (int ky = 0; ky < 5; ky++)
            #pragma GCC unroll 5
            for (int kx = 0; kx < 5; kx++) {
                const float *p = r + ky * size + kx;
                z0 += w[ky * 5 + kx] * splat(p[0]);
                z1 += w[ky * 5 + kx] * splat(p[s]);
                z2 += w[ky * 5 + kx] * splat(p[2 * s]);
                z3 += w[ky * 5 + kx] * splat(p[3 * s]);
            }
        STORE(z + (ox + 0) * 8, z0);
        STORE(z + (ox + 1) * 8, z1);
        STORE(z + (ox + 2) * 8, z2);
        STORE(z + (ox + 3) * 8, z3);
    }
    for (; ox < width; ox++) {
        v8 z0 = bias;
        const float *r = in_row + ox * s;
        #pragma GCC unroll 5
        for (int ky = 0; ky < 5; ky++)
            #pragma GCC unroll 5
            for (int kx = 0; kx < 5; kx++) z0 += w[ky * 5 + kx] * splat(r[ky * size + kx]);
        STORE(z + ox * 8, z0);
    }
}

static int is_gray5(const layer_t *l) { return l->cin == 1 && l->k == 5 && l->cout == 8; }

/* z[ox][c]: pre-activations of conv row oy of sample n. */
static void conv_row(const layer_t *l, int64_t n, int64_t oy, float *z)
{
    const int64_t width = 2 * l->pooled;
    const float *in_row = l->in + (n * l->size + oy * l->stride) * l->size * l->cin;
    if (is_gray5(l)) {
        conv_row_gray5(l, in_row, z);
        return;
    }
    for (int64_t cb = 0; cb < l->cout / 8; cb++) {
        int64_t ox = 0;
        for (; ox + 4 <= width; ox += 4) conv_block(l, in_row, z, ox, 4, cb);
        for (; ox < width; ox++) conv_block(l, in_row, z, ox, 1, cb);
    }
}

/* Weight gradient of one conv row for the stage-1 first layer on gray images
 * (1 input channel, 5x5, 8 outputs): the 25 sums stay in registers. */
static void weight_grad_row_gray5(const float *in_row, const float *gz, float *gw, int64_t width,
                                  int64_t size, int64_t stride)
{
    v8 sum[25];
    #pragma GCC unroll 25
    for (int t = 0; t < 25; t++) sum[t] = splat(0.f);
    for (int64_t ox = 0; ox < width; ox++) {
        const v8 g = LOAD(gz + ox * 8);
        const float *r = in_row + ox * stride;
        #pragma GCC unroll 5
        for (int ky = 0; ky < 5; ky++)
            #pragma GCC unroll 5
            for (int kx = 0; kx < 5; kx++) sum[ky * 5 + kx] += g * splat(r[ky * size + kx]);
    }
    #pragma GCC unroll 25
    for (int t = 0; t < 25; t++) STORE(gw + t * 8, LOAD(gw + t * 8) + sum[t]);
}

static int layer_unsupported(int64_t size, int64_t cin, int64_t cout, int64_t k, int64_t stride)
{
    if (size < k || k < 1 || stride < 1 || cin < 1 || cout < 8 || cout % 8) return 1;
    int64_t conv = (size - k) / stride + 1;
    return conv % 2 || conv * cout > MAX_ROW;
}

int conv_prelu_pool_forward(const float *in, const float *wt, const float *bias, const float *slope,
                            float *out, int64_t batch, int64_t size, int64_t cin, int64_t cout,
                            int64_t k, int64_t stride, int threads)
{
    if (layer_unsupported(size, cin, cout, k, stride) || threads < 1) return -1;
    const layer_t l = {in, wt, bias, slope, size, cin, cout, k, stride, ((size - k) / stride + 1) / 2};
    const int64_t p = l.pooled;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < batch; n++) {
        float z[MAX_ROW], row[MAX_ROW / 2];
        for (int64_t py = 0; py < p; py++) {
            memset(row, 0, sizeof(float) * p * cout);
            for (int dy = 0; dy < 2; dy++) {
                conv_row(&l, n, 2 * py + dy, z);
                for (int64_t px = 0; px < p; px++)
                    for (int64_t cb = 0; cb < cout / 8; cb++) {
                        v8 a = LOAD(slope + cb * 8), sum = LOAD(row + px * cout + cb * 8);
                        for (int dx = 0; dx < 2; dx++) {
                            v8 v = LOAD(z + (2 * px + dx) * cout + cb * 8);
                            sum += select8(v > 0, v, a * v);
                        }
                        STORE(row + px * cout + cb * 8, sum);
                    }
            }
            float *o = out + (n * p + py) * p * cout;
            for (int64_t i = 0; i < p * cout; i++) o[i] = 0.25f * row[i];
        }
    }
    return 0;
}

/* grad: [batch, p, p, cout] -> grad_wt [k, k, cin, cout], grad_bias [cout], grad_slope [cout].
 * No gradient for the input: this is a first layer. */
int conv_prelu_pool_backward(const float *in, const float *wt, const float *bias, const float *slope,
                             const float *grad, float *grad_wt, float *grad_bias, float *grad_slope,
                             int64_t batch, int64_t size, int64_t cin, int64_t cout, int64_t k,
                             int64_t stride, int threads)
{
    if (layer_unsupported(size, cin, cout, k, stride) || threads < 1) return -1;
    const layer_t l = {in, wt, bias, slope, size, cin, cout, k, stride, ((size - k) / stride + 1) / 2};
    const int64_t p = l.pooled, width = 2 * p, taps = k * k * cin, count = (taps + 2) * cout;
    double *partial = calloc((size_t)threads * count, sizeof(double));
    if (!partial) return -1;
    #pragma omp parallel num_threads(threads)
    {
        double *mine = partial + (int64_t)thread_index() * count;
        float *sums = calloc((size_t)count, sizeof(float)); /* one sample's sums, then into doubles */
        float *gw = sums, *gb = sums + taps * cout, *ga = gb + cout;
        float z[MAX_ROW];
        #pragma omp for schedule(static)
        for (int64_t n = 0; n < batch; n++) {
            for (int64_t py = 0; py < p; py++)
                for (int dy = 0; dy < 2; dy++) {
                    const int64_t oy = 2 * py + dy;
                    conv_row(&l, n, oy, z);
                    /* z becomes the gradient of the pre-activation, in place */
                    const float *g_row = grad + (n * p + py) * p * cout;
                    for (int64_t cb = 0; cb < cout / 8; cb++) {
                        v8 a = LOAD(slope + cb * 8), sb = LOAD(gb + cb * 8), sa = LOAD(ga + cb * 8);
                        for (int64_t ox = 0; ox < width; ox++) {
                            v8 g = LOAD(g_row + (ox / 2) * cout + cb * 8) * splat(0.25f);
                            v8 v = LOAD(z + ox * cout + cb * 8);
                            m8 positive = v > 0;
                            v8 gz = select8(positive, g, a * g);
                            sa += select8(positive, splat(0.f), g * v);
                            sb += gz;
                            STORE(z + ox * cout + cb * 8, gz);
                        }
                        STORE(gb + cb * 8, sb);
                        STORE(ga + cb * 8, sa);
                    }
                    const float *in_row = in + (n * size + oy * stride) * size * cin;
                    if (is_gray5(&l)) {
                        weight_grad_row_gray5(in_row, z, gw, width, size, stride);
                        continue;
                    }
                    for (int64_t ky = 0; ky < k; ky++)
                        for (int64_t i = 0; i < k * cin; i++) {
                            const float *r = in_row + ky * size * cin + i;
                            for (int64_t cb = 0; cb < cout / 8; cb++) {
                                /* four sums break the dependency chain between FMAs */
                                v8 s0 = splat(0.f), s1 = splat(0.f), s2 = splat(0.f), s3 = splat(0.f);
                                int64_t ox = 0;
                                for (; ox + 4 <= width; ox += 4) {
                                    s0 += LOAD(z + (ox + 0) * cout + cb * 8) * splat(r[(ox + 0) * stride * cin]);
                                    s1 += LOAD(z + (ox + 1) * cout + cb * 8) * splat(r[(ox + 1) * stride * cin]);
                                    s2 += LOAD(z + (ox + 2) * cout + cb * 8) * splat(r[(ox + 2) * stride * cin]);
                                    s3 += LOAD(z + (ox + 3) * cout + cb * 8) * splat(r[(ox + 3) * stride * cin]);
                                }
                                for (; ox < width; ox++) s0 += LOAD(z + ox * cout + cb * 8) * splat(r[ox * stride * cin]);
                                float *q = gw + (ky * k * cin + i) * cout + cb * 8;
                                STORE(q, LOAD(q) + (s0 + s1) + (s2 + s3));
                            }
                        }
                }
            for (int64_t i = 0; i < count; i++) { mine[i] += sums[i]; sums[i] = 0.f; }
        }
        free(sums);
    }
    sum_partials(partial, threads, count, 0, taps * cout, grad_wt);
    sum_partials(partial, threads, count, taps * cout, cout, grad_bias);
    sum_partials(partial, threads, count, (taps + 1) * cout, cout, grad_slope);
    free(partial);
    return 0;
}

/* ---- PReLU -> 2x2 average pooling (ceil mode) ----------------------------
 * x: [batch, h, w, c]; out: [batch, (h + 1) / 2, (w + 1) / 2, c].  A window cut by
 * the edge averages the values it covers, as torch's avg_pool2d(ceil_mode=True).
 */
static int pool_unsupported(int64_t h, int64_t w, int64_t c)
{
    return h < 1 || w < 1 || c < 8 || c % 8 || c > MAX_CHANNELS;
}

int prelu_pool_forward(const float *x, const float *slope, float *out, int64_t batch, int64_t h,
                       int64_t w, int64_t c, int threads)
{
    if (pool_unsupported(h, w, c) || threads < 1) return -1;
    const int64_t ph = (h + 1) / 2, pw = (w + 1) / 2;
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t row = 0; row < batch * ph; row++) {
        const int64_t n = row / ph, py = row % ph, rows = (2 * py + 1 < h) ? 2 : 1;
        for (int64_t px = 0; px < pw; px++) {
            const int64_t cols = (2 * px + 1 < w) ? 2 : 1;
            const v8 scale = splat(1.f / (float)(rows * cols));
            for (int64_t cb = 0; cb < c / 8; cb++) {
                const v8 a = LOAD(slope + cb * 8);
                v8 sum = splat(0.f);
                for (int64_t dy = 0; dy < rows; dy++)
                    for (int64_t dx = 0; dx < cols; dx++) {
                        v8 v = LOAD(x + ((n * h + 2 * py + dy) * w + 2 * px + dx) * c + cb * 8);
                        sum += select8(v > 0, v, a * v);
                    }
                STORE(out + ((n * ph + py) * pw + px) * c + cb * 8, sum * scale);
            }
        }
    }
    return 0;
}

/* grad: [batch, (h + 1) / 2, (w + 1) / 2, c] -> grad_x [batch, h, w, c], grad_slope [c]. */
int prelu_pool_backward(const float *x, const float *slope, const float *grad, float *grad_x,
                        float *grad_slope, int64_t batch, int64_t h, int64_t w, int64_t c, int threads)
{
    if (pool_unsupported(h, w, c) || threads < 1) return -1;
    const int64_t ph = (h + 1) / 2, pw = (w + 1) / 2;
    double *partial = calloc((size_t)threads * c, sizeof(double));
    if (!partial) return -1;
    #pragma omp parallel num_threads(threads)
    {
        double *mine = partial + (int64_t)thread_index() * c;
        float sums[MAX_CHANNELS];
        #pragma omp for schedule(static)
        for (int64_t row = 0; row < batch * h; row++) {
            const int64_t n = row / h, y = row % h, py = y / 2, rows = (2 * py + 1 < h) ? 2 : 1;
            for (int64_t i = 0; i < c; i++) sums[i] = 0.f;
            for (int64_t xx = 0; xx < w; xx++) {
                const int64_t px = xx / 2, cols = (2 * px + 1 < w) ? 2 : 1;
                const v8 scale = splat(1.f / (float)(rows * cols));
                const float *g_at = grad + ((n * ph + py) * pw + px) * c;
                const int64_t at = ((n * h + y) * w + xx) * c;
                for (int64_t cb = 0; cb < c / 8; cb++) {
                    const v8 a = LOAD(slope + cb * 8), g = LOAD(g_at + cb * 8) * scale, v = LOAD(x + at + cb * 8);
                    const m8 positive = v > 0;
                    STORE(grad_x + at + cb * 8, select8(positive, g, a * g));
                    STORE(sums + cb * 8, LOAD(sums + cb * 8) + select8(positive, splat(0.f), g * v));
                }
            }
            for (int64_t i = 0; i < c; i++) mine[i] += sums[i];
        }
    }
    sum_partials(partial, threads, c, 0, c, grad_slope);
    free(partial);
    return 0;
}
