/* One training step of STSTNet for a range of folds, forward and backward, on the CPU (AVX2 + FMA).
 *
 * Built and called by training/foldkernel.py, whose docstring says what the step computes. Image by image, every
 * fold of the range runs its first layer on the image while it is in cache: the convolution in Winograd's
 * F(2x2, 3x3) form over 2x2 tiles of positions, ReLU, the 3x3/3 pool (a max-pool where the fold's batch-norm scale
 * is positive, else a min-pool: batch norm is applied after the pool) with its arg positions, and batch norm's sums.
 * The filters' gradient through batch norm's statistics needs no activation map kept: the statistics depend on the
 * positions only through s1 = sum r and s2 = sum r^2, so that part of the gradient is
 * ds1 * sum_i m_i P_i + 2 ds2 * sum_i r_i P_i (m the ReLU's mask, P_i the 3x3 patch); both sums are taken here, in
 * Winograd's F(3x3, 2x2) form (the weight-gradient transform) over the same tiles. A second pass, image by image
 * again, applies batch norm, dropout, the 2x2 average pool folded into the classifier and the cross-entropy, and sends
 * each pooled value's gradient to its arg position's patch. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define C 16  /* first-layer channels: 3 + 5 + 8 */
#define T 32  /* taps per patch, 27 used, padded with zeros */
#define K 27
#define FLUSH 16 /* images whose Winograd sums are added in float before they go into double */
#define CHT 8 /* 2x2 tiles per chunk of the first layer */
#define SH (3 * 16 * C) /* Winograd sums of one image: 3 input channels x 16 points x C */

/* built by training/foldkernel.py (FLAGS: -O3 -funroll-loops -mavx2 -mfma) */
int fk_cpu_ok(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Winograd's G for 3-tap filters (F(2, 3)): the filters' transform (wtile) and, transposed, the sums' (untile). */
static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

/* One 3x3 filter w in Winograd's F(2x2, 3x3) form, G w G^T with its last row and column negated (as xh's B'),
 * its 16 points written C floats apart. */
static void wtile(const float *w, float *out) {
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            float acc = 0;
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) acc += (float)G[i][y] * w[y * 3 + x] * (float)G[j][x];
            out[(i * 4 + j) * C] = ((i == 3) != (j == 3)) ? -acc : acc;
        }
}

/* A v A^T of the 2x2 tile [[v0, v1], [v2, v3]] (A = [[1, 0], [1, 1], [1, -1], [0, 1]]): its 16 points, the
 * i-th stored at out + i * 2 * C (out: a point-major buffer of r and m, C floats each). */
static inline void tile_out(__m256 v0, __m256 v1, __m256 v2, __m256 v3, float *out) {
    const __m256 u[4][2] = {{v0, v1}, {_mm256_add_ps(v0, v2), _mm256_add_ps(v1, v3)},
                            {_mm256_sub_ps(v0, v2), _mm256_sub_ps(v1, v3)}, {v2, v3}};
    for (int i = 0; i < 4; i++) {
        _mm256_store_ps(out + (4 * i) * 2 * C, u[i][0]);
        _mm256_store_ps(out + (4 * i + 1) * 2 * C, _mm256_add_ps(u[i][0], u[i][1]));
        _mm256_store_ps(out + (4 * i + 2) * 2 * C, _mm256_sub_ps(u[i][0], u[i][1]));
        _mm256_store_ps(out + (4 * i + 3) * 2 * C, u[i][1]);
    }
}

/* The first layer of one image for one fold, positions in 2x2 tiles (4 consecutive positions per tile). Pools:
 * value sel = sgn * max(sgn * r) over the window (sgn = +1: max, -1: min) in val, its first arg position in arg. The
 * sums over positions of m P and r P are taken in Winograd's F(3x3, 2x2) form: per tile, the 2x2 maps r and m become
 * 4x4 (A r A^T) and multiply the tile's transformed input xh (B^T X B, 3 channels x 16, given), accumulated in S1h
 * and S2h (3 x 16 x C); the caller turns them into the 3x3 sums (G^T s G). sums += s1, s2, the ReLU's count. */
static void image_forward(const float *xh, int npos, const int32_t *win, const float *Wh,
                          const float *bias, const float *sgn, float *val, int32_t *arg, int16_t *arg16, int nwin,
                          float *S1h, float *S2h, float *sums) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), ninf = _mm256_set1_ps(-INFINITY);
    const __m256i none = _mm256_set1_epi32(-1);
    for (int w = 0; w < nwin * C; w += 8) {
        _mm256_store_ps(val + w, ninf);
        _mm256_store_si256((__m256i *)(arg + w), none);
    }
    const __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
    const __m256 g0 = _mm256_loadu_ps(sgn), g1 = _mm256_loadu_ps(sgn + 8);
    __m256 s1a = zero, s1b = zero, s2a = zero, s2b = zero, mca = zero, mcb = zero;
    float rh[CHT][16][2][C] __attribute__((aligned(32)));  /* a chunk's transformed r and m, per tile and point */
    float mb[CHT][16][C] __attribute__((aligned(32)));  /* a chunk's Winograd products of the convolution */
    for (int c0 = 0; c0 < npos; c0 += 4 * CHT) {
        const float *xc = xh + (size_t)(c0 / 4) * 3 * 16;
        /* the convolution in Winograd's F(2x2, 3x3): per tile and point, M = sum over the 3 input channels of the
         * tile's transformed input times the transformed filters (Wh: 3 x 16 points x C, signs matching xh) */
        for (int pt = 0; pt < 16; pt++) {
            const __m256 w00 = _mm256_load_ps(Wh + pt * C), w01 = _mm256_load_ps(Wh + pt * C + 8);
            const __m256 w10 = _mm256_load_ps(Wh + (16 + pt) * C), w11 = _mm256_load_ps(Wh + (16 + pt) * C + 8);
            const __m256 w20 = _mm256_load_ps(Wh + (32 + pt) * C), w21 = _mm256_load_ps(Wh + (32 + pt) * C + 8);
            for (int t = 0; t < CHT; t++) {
                const float *xt = xc + t * 3 * 16 + pt;
                const __m256 x0 = _mm256_broadcast_ss(xt), x1 = _mm256_broadcast_ss(xt + 16);
                const __m256 x2 = _mm256_broadcast_ss(xt + 32);
                _mm256_store_ps(mb[t][pt], _mm256_fmadd_ps(x2, w20, _mm256_fmadd_ps(x1, w10, _mm256_mul_ps(x0, w00))));
                _mm256_store_ps(mb[t][pt] + 8,
                                _mm256_fmadd_ps(x2, w21, _mm256_fmadd_ps(x1, w11, _mm256_mul_ps(x0, w01))));
            }
        }
        for (int t = 0; t < CHT; t++) {  /* each tile: A^T M A + bias, the ReLU, batch norm's sums, the pools */
            const int i0 = c0 + 4 * t;
            __m256 a[4][2], m[4][2];
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m256 u0[4], u1[4];  /* A^T M: rows M0 + M1 + M2 and M1 - M2 - M3, per column */
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m256 r0 = _mm256_load_ps(mb[t][j] + 8 * h), r1 = _mm256_load_ps(mb[t][4 + j] + 8 * h);
                    const __m256 r2 = _mm256_load_ps(mb[t][8 + j] + 8 * h), r3 = _mm256_load_ps(mb[t][12 + j] + 8 * h);
                    u0[j] = _mm256_add_ps(_mm256_add_ps(r0, r1), r2);
                    u1[j] = _mm256_sub_ps(_mm256_sub_ps(r1, r2), r3);
                }
                const __m256 bh = h ? b1 : b0;
                a[0][h] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(u0[0], u0[1]), u0[2]), bh);
                a[1][h] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(u0[1], u0[2]), u0[3]), bh);
                a[2][h] = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(u1[0], u1[1]), u1[2]), bh);
                a[3][h] = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(u1[1], u1[2]), u1[3]), bh);
            }
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                const int wq = win[i0 + q];
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const __m256 z = a[q][h];
                    __m256 r = _mm256_max_ps(z, zero), mk = _mm256_and_ps(_mm256_cmp_ps(z, zero, _CMP_GT_OQ), one);
                    if (wq < -1) { r = zero; mk = zero; }  /* a padding position of the tiles */
                    a[q][h] = r;
                    m[q][h] = mk;
                }
                s1a = _mm256_add_ps(s1a, a[q][0]);
                s1b = _mm256_add_ps(s1b, a[q][1]);
                s2a = _mm256_fmadd_ps(a[q][0], a[q][0], s2a);
                s2b = _mm256_fmadd_ps(a[q][1], a[q][1], s2b);
                mca = _mm256_add_ps(mca, m[q][0]);
                mcb = _mm256_add_ps(mcb, m[q][1]);
                if (wq >= 0) {
                    const __m256 iq = _mm256_castsi256_ps(_mm256_set1_epi32(i0 + q));
#pragma GCC unroll 2
                    for (int h = 0; h < 2; h++) {
                        float *pv = val + wq * C + 8 * h;
                        int32_t *pa = arg + wq * C + 8 * h;
                        const __m256 tv = _mm256_mul_ps(a[q][h], h ? g1 : g0), cur = _mm256_load_ps(pv);
                        const __m256 gt = _mm256_cmp_ps(tv, cur, _CMP_GT_OQ);
                        _mm256_store_ps(pv, _mm256_blendv_ps(cur, tv, gt));
                        const __m256 old = _mm256_castsi256_ps(_mm256_load_si256((const __m256i *)pa));
                        _mm256_store_si256((__m256i *)pa, _mm256_castps_si256(_mm256_blendv_ps(old, iq, gt)));
                    }
                }
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {  /* the tile's 2x2 maps r and m, transformed */
                tile_out(a[0][h], a[1][h], a[2][h], a[3][h], rh[t][0][0] + 8 * h);
                tile_out(m[0][h], m[1][h], m[2][h], m[3][h], rh[t][0][1] + 8 * h);
            }
        }
        /* S1h += xh * (A m A^T), S2h += xh * (A r A^T) over the chunk's tiles: 12 accumulators per point */
        for (int pt = 0; pt < 16; pt++) {
            __m256 u[3][2], v[3][2];
            for (int ch = 0; ch < 3; ch++)
                #pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    u[ch][h] = _mm256_load_ps(S1h + (ch * 16 + pt) * C + 8 * h);
                    v[ch][h] = _mm256_load_ps(S2h + (ch * 16 + pt) * C + 8 * h);
                }
            for (int t = 0; t < CHT; t++) {
                const __m256 r0 = _mm256_load_ps(rh[t][pt][0]), r1 = _mm256_load_ps(rh[t][pt][0] + 8);
                const __m256 m0 = _mm256_load_ps(rh[t][pt][1]), m1 = _mm256_load_ps(rh[t][pt][1] + 8);
                for (int ch = 0; ch < 3; ch++) {
                    const __m256 x = _mm256_broadcast_ss(xc + (t * 3 + ch) * 16 + pt);
                    u[ch][0] = _mm256_fmadd_ps(x, m0, u[ch][0]);
                    u[ch][1] = _mm256_fmadd_ps(x, m1, u[ch][1]);
                    v[ch][0] = _mm256_fmadd_ps(x, r0, v[ch][0]);
                    v[ch][1] = _mm256_fmadd_ps(x, r1, v[ch][1]);
                }
            }
            for (int ch = 0; ch < 3; ch++)
                #pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    _mm256_store_ps(S1h + (ch * 16 + pt) * C + 8 * h, u[ch][h]);
                    _mm256_store_ps(S2h + (ch * 16 + pt) * C + 8 * h, v[ch][h]);
                }
        }
    }
    for (int w = 0; w < nwin * C; w += 8)  /* back from sgn * value to the value */
        _mm256_store_ps(val + w, _mm256_mul_ps(_mm256_load_ps(val + w), (w & 8) ? g1 : g0));
    for (int w = 0; w < nwin * C; w += 16) {  /* the arg positions in 16 bits */
        const __m256i lo = _mm256_load_si256((const __m256i *)(arg + w));
        const __m256i hi = _mm256_load_si256((const __m256i *)(arg + w + 8));
        _mm256_store_si256((__m256i *)(arg16 + w), _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8));
    }
    _mm256_store_ps(sums, s1a);
    _mm256_store_ps(sums + 8, s1b);
    _mm256_store_ps(sums + C, s2a);
    _mm256_store_ps(sums + C + 8, s2b);
    _mm256_store_ps(sums + 2 * C, mca);
    _mm256_store_ps(sums + 2 * C + 8, mcb);
}

/* The dropout keep factors (2 or 0) of 16 consecutive elements starting at element e0 (a multiple of 16). */
static inline void keep16(const uint8_t *bits, size_t e0, __m256 *k0, __m256 *k1) {
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256 two = _mm256_set1_ps(2.0f);
    const __m256i lo = _mm256_and_si256(_mm256_set1_epi32(bits[e0 >> 3]), sel);
    const __m256i hi = _mm256_and_si256(_mm256_set1_epi32(bits[(e0 >> 3) + 1]), sel);
    *k0 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(lo, sel)), two);
    *k1 = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(hi, sel)), two);
}

/* Channel c's 3x3 sums per input channel (tap order ch*9 + dy*3 + dx) from the Winograd sums s (3 x 16 x C):
 * G^T s G, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]. */
static void untile(const double *s, int c, double *out) {
    for (int ch = 0; ch < 3; ch++)
        for (int dy = 0; dy < 3; dy++)
            for (int dx = 0; dx < 3; dx++) {
                double acc = 0;
                for (int i = 0; i < 4; i++)
                    for (int j = 0; j < 4; j++) acc += G[i][dy] * s[(ch * 16 + i * 4 + j) * C + c] * G[j][dx];
                out[ch * 9 + dy * 3 + dx] = acc;
            }
}

/* One image's classifier input for one fold: batch norm (scale, shift from the fold's statistics st) on its pooled
 * values v, dropout's keep factor (2 or 0, from bits) times the 2x2 average pool's 1/4 (kept in kq, per pixel), summed
 * into feat (the pooled features in the order y, x, c). */
static void image_feat(const float *v, int q, int q2, int h, const double *sf, const uint8_t *bits, int j, int nfolds,
                       int f, float *feat, float *kq) {
    const int D = C * h * h;
    float sc[C] __attribute__((aligned(32))), sh[C] __attribute__((aligned(32)));
    for (int c = 0; c < C; c++) { sc[c] = (float)sf[6 * C + c]; sh[c] = (float)sf[7 * C + c]; }
    const __m256 sc0 = _mm256_load_ps(sc), sc1 = _mm256_load_ps(sc + 8);
    const __m256 sh0 = _mm256_load_ps(sh), sh1 = _mm256_load_ps(sh + 8), quarter = _mm256_set1_ps(0.25f);
    __m256 k0 = quarter, k1 = quarter;
    memset(feat, 0, sizeof(float) * D);
    for (int py = 0; py < q2; py++)
        for (int px = 0; px < q2; px++) {
            const float *vw = v + (py * q + px) * C;
            float *fd = feat + ((py / 2) * h + px / 2) * C;
            if (bits) {  /* dropout's keep factor (2 or 0) times the average pool's 1/4: exact either way */
                keep16(bits, (((size_t)j * q2 * q2 + py * q2 + px) * nfolds + f) * C, &k0, &k1);
                k0 = _mm256_mul_ps(k0, quarter);
                k1 = _mm256_mul_ps(k1, quarter);
            }
            _mm256_store_ps(kq + (py * q2 + px) * C, k0);
            _mm256_store_ps(kq + (py * q2 + px) * C + 8, k1);
            const __m256 y0 = _mm256_fmadd_ps(_mm256_load_ps(vw), sc0, sh0);
            const __m256 y1 = _mm256_fmadd_ps(_mm256_load_ps(vw + 8), sc1, sh1);
            _mm256_store_ps(fd, _mm256_fmadd_ps(y0, k0, _mm256_load_ps(fd)));
            _mm256_store_ps(fd + 8, _mm256_fmadd_ps(y1, k1, _mm256_load_ps(fd + 8)));
        }
}

static __thread float *tl_pv;      /* the calling thread's pools, kept between steps (fk_step) */
static __thread int16_t *tl_pa;
static __thread size_t tl_cap;

static void *zalloc(size_t bytes) {
    void *p = aligned_alloc(32, (bytes + 31) / 32 * 32);
    if (p) memset(p, 0, (bytes + 31) / 32 * 32);
    return p;
}

/* The step's inputs from n flow images x (n, 3, hw, hw) (the convolution's padding 2 around them): P (n, rows, T),
 * the 3x3 patch of each position in the order of order (rows,) (raster positions on the side x side grid, -1: a
 * zero row), and xh (n, rows / 4, 3, 16): each 2x2 tile's 4x4 input X as B'^T X B' (tiles ts x ts, then zeros). */
void fk_prepare(int n, int hw, int rows, int ts, const float *x, const int32_t *order, float *P, float *xh) {
    static const float Bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
    const int side = hw + 2;
    for (int j = 0; j < n; j++) {
        const float *img = x + (size_t)j * 3 * hw * hw;
#define PIX(ch, yy, xx) (((yy) >= 2 && (yy) < hw + 2 && (xx) >= 2 && (xx) < hw + 2) ? \
                         img[((ch) * hw + (yy) - 2) * hw + (xx) - 2] : 0.0f)
        float *Pj = P + (size_t)j * rows * T;
        memset(Pj, 0, sizeof(float) * rows * T);
        for (int r = 0; r < rows; r++) {
            const int pos = order[r];
            if (pos < 0) continue;
            const int y = pos / side, xx = pos % side;
            for (int ch = 0; ch < 3; ch++)
                for (int dy = 0; dy < 3; dy++)
                    for (int dx = 0; dx < 3; dx++) Pj[r * T + ch * 9 + dy * 3 + dx] = PIX(ch, y + dy, xx + dx);
        }
        float *xj = xh + (size_t)j * (rows / 4) * 3 * 16;
        memset(xj, 0, sizeof(float) * (rows / 4) * 3 * 16);
        for (int t = 0; t < ts * ts; t++) {
            const int ty = t / ts, tx = t % ts;
            for (int ch = 0; ch < 3; ch++) {
                float X[4][4], U[4][4];
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < 4; k++) X[i][k] = PIX(ch, 2 * ty + i, 2 * tx + k);
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < 4; k++) {
                        float acc = 0;
                        for (int l = 0; l < 4; l++) acc += Bt[i][l] * X[l][k];
                        U[i][k] = acc;
                    }
                for (int i = 0; i < 4; i++)
                    for (int k = 0; k < 4; k++) {
                        float acc = 0;
                        for (int l = 0; l < 4; l++) acc += U[i][l] * Bt[k][l];
                        xj[(t * 3 + ch) * 16 + i * 4 + k] = acc;
                    }
            }
        }
#undef PIX
    }
}

/* Folds f0 <= f < f1 of a batch of n images; arrays C-contiguous float32 unless said. F folds in all, q x q pool
 * windows, q2 = q/2*2 the pooled side the 2x2 average pool reads, h = q2/2, D = C*h*h features, nk classes; the
 * classifier has nv blocks of D features (nv = 1: one image per clip, SBML; nv > 1: FSB's fused head, image j the
 * view j / nb of clip j % nb, nb = n / nv, and a clip's logits the sum of its images' blocks, the bias once):
 *   P (n, npos, T) patches, positions in 2x2 tiles (4 consecutive rows per tile, npos a multiple of 4 * CHT),
 *   rows that are no position zero; xh (n, npos / 4, 3, 16) each tile's input B^T X B (B^T's last row negated);
 *   win (npos,) int32: the pool window of each position (-1: none, -2: no position); nvalid: the positions;
 *   labels (nb,) int32
 *   conv_w (F, C, K), conv_b, bn_w, bn_b (F, C), fc_w (F, nk, nv*D) (features in the order block, c, y, x), fc_b (F, nk)
 *   bnw (F, n): 1 where image j is in fold f's batch-norm statistics (0: held out, or the fold skips the step)
 *   coef (F, nb): clip g's weight in fold f's loss; bits: dropout's random bytes (NULL: no dropout), element
 *   ((j*q2*q2 + pixel)*F + f)*C + c kept (x2) where its bit is 1, dropped where it is 0
 *   out: the gradients (the parameters' shapes), logits (F, n, nk) (each image's share: 0 for images out of the
 *   fold), loss (F,)
 *   double, mean and var (F, C): batch norm's batch mean and biased variance. Folds with no image get zeros.
 * Returns 0, or -1 when memory could not be had. */
int fk_step(int n, int npos, int nvalid, int q, int nk, int nfolds, int f0, int f1, int nv,
            const float *P, const float *xh, const int32_t *win, const int32_t *labels,
            const float *conv_w, const float *conv_b, const float *bn_w, const float *bn_b,
            const float *fc_w, const float *fc_b, const float *bnw, const float *coef, const uint8_t *bits, float eps,
            float *g_conv_w, float *g_conv_b, float *g_bn_w, float *g_bn_b, float *g_fc_w, float *g_fc_b,
            float *logits, double *loss, float *mean_out, float *var_out) {
    const int nwin = q * q, q2 = q / 2 * 2, h = q2 / 2, hh = h * h, D = C * hh;
    const int nf = f1 - f0;
    const size_t per = (size_t)nwin * C;  /* pooled values of one image and fold */
    if (nf <= 0) return 0;
    float *Wh = zalloc(sizeof(float) * nf * 3 * 16 * C), *sgn = zalloc(sizeof(float) * nf * C);
    float *S1 = zalloc(sizeof(float) * nf * SH), *S2 = zalloc(sizeof(float) * nf * SH);
    int32_t *arg = zalloc(sizeof(int32_t) * per);
    float *sums = zalloc(sizeof(float) * 3 * C);
    /* the pools of every image and fold of the range (written before they are read): kept by the thread from one
     * step to the next, so that a step neither faults in nor clears fresh pages */
    const size_t pools = (size_t)n * nf * per;
    if (pools > tl_cap) {
        free(tl_pv);
        free(tl_pa);
        tl_pv = aligned_alloc(32, sizeof(float) * pools);
        tl_pa = aligned_alloc(32, (sizeof(int16_t) * pools + 31) / 32 * 32);
        tl_cap = tl_pv && tl_pa ? pools : 0;
    }
    float *pv = tl_pv;
    int16_t *pa = tl_pa;
    double *S1d = zalloc(sizeof(double) * nf * SH), *S2d = zalloc(sizeof(double) * nf * SH);
    double *st = zalloc(sizeof(double) * nf * 10 * C);  /* per fold: s1 s2 mc mean var inv scale shift dscale dshift */
    const int nb = n / nv;  /* clips: image j is clip j % nb's image for head block j / nb */
    float *fwT = zalloc(sizeof(float) * nf * nv * nk * D), *gfc = zalloc(sizeof(float) * nf * nv * nk * D);
    float *dz = zalloc(sizeof(float) * nf * nb * nk);  /* each clip's gradient at its logits */
    double *zl = zalloc(sizeof(double) * nf * n * nk);  /* each image's logits, unrounded */
    float *gws = zalloc(sizeof(float) * nf * C * T), *gbs = zalloc(sizeof(float) * nf * C);
    float *feat = zalloc(sizeof(float) * D), *dfeat = zalloc(sizeof(float) * D);
    const int npix = q2 * q2;
    float *gsp = zalloc(sizeof(float) * npix * C);  /* an image's gradients at the pools' arg positions */
    float *kq = zalloc(sizeof(float) * npix * C);  /* its keep factors over 4, per pixel */
    double *prob = zalloc(sizeof(double) * nk);
    int *used = zalloc(sizeof(int) * nf), *pending = zalloc(sizeof(int) * nf), *last = zalloc(sizeof(int) * nf);
    int status = 0;
    if (!Wh || !sgn || !S1 || !S2 || !arg || !pv || !sums || !pa || !S1d || !S2d || !st || !fwT || !gfc ||
        !gws || !gbs || !dz || !zl || !feat || !dfeat || !gsp || !kq || !prob || !used || !pending || !last) {
        status = -1;
        goto done;
    }
    for (int i = 0; i < nf; i++) {
        const int f = f0 + i;
        memset(g_conv_w + (size_t)f * C * K, 0, sizeof(float) * C * K);
        memset(g_conv_b + (size_t)f * C, 0, sizeof(float) * C);
        memset(g_bn_w + (size_t)f * C, 0, sizeof(float) * C);
        memset(g_bn_b + (size_t)f * C, 0, sizeof(float) * C);
        memset(g_fc_w + (size_t)f * nk * nv * D, 0, sizeof(float) * nk * nv * D);
        memset(g_fc_b + (size_t)f * nk, 0, sizeof(float) * nk);
        memset(logits + (size_t)f * n * nk, 0, sizeof(float) * n * nk);
        memset(mean_out + (size_t)f * C, 0, sizeof(float) * C);
        memset(var_out + (size_t)f * C, 0, sizeof(float) * C);
        loss[f] = 0.0;
        for (int c = 0; c < C; c++) {
            for (int ch = 0; ch < 3; ch++)
                wtile(conv_w + ((size_t)f * C + c) * K + ch * 9, Wh + (size_t)i * 3 * 16 * C + ch * 16 * C + c);
            sgn[i * C + c] = bn_w[(size_t)f * C + c] > 0 ? 1.0f : -1.0f;  /* the scale's sign is the weight's */
        }
        for (int b = 0; b < nv; b++)  /* the classifier's features reordered (y, x, c): channels side by side */
            for (int k = 0; k < nk; k++)
                for (int c = 0; c < C; c++)
                    for (int d = 0; d < hh; d++)
                        fwT[(((size_t)i * nv + b) * nk + k) * D + d * C + c] =
                            fc_w[(((size_t)f * nk + k) * nv + b) * D + c * hh + d];
        for (int j = 0; j < n; j++)
            if (bnw[(size_t)f * n + j] > 0) { used[i]++; last[i] = j; }
    }
    /* pass 1: the first layer, image by image, every fold of the range on the image while it is in cache */
    for (int j = 0; j < n; j++) {
        const float *xj = xh + (size_t)j * (npos / 4) * 3 * 16;
        for (int i = 0; i < nf; i++) {
            const int f = f0 + i;
            if (!(bnw[(size_t)f * n + j] > 0)) continue;
            float *S1f = S1 + (size_t)i * SH, *S2f = S2 + (size_t)i * SH;
            image_forward(xj, npos, win, Wh + (size_t)i * 3 * 16 * C, conv_b + (size_t)f * C, sgn + i * C,
                          pv + ((size_t)j * nf + i) * per, arg, pa + ((size_t)j * nf + i) * per, nwin, S1f, S2f, sums);
            double *sf = st + (size_t)i * 10 * C;
            for (int e = 0; e < 3 * C; e++) sf[e] += sums[e];
            if (++pending[i] == FLUSH || j == last[i]) {  /* the float sums into the fold's double ones */
                double *S1g = S1d + (size_t)i * SH, *S2g = S2d + (size_t)i * SH;
                for (int e = 0; e < SH; e++) { S1g[e] += S1f[e]; S2g[e] += S2f[e]; S1f[e] = 0; S2f[e] = 0; }
                pending[i] = 0;
            }
        }
    }
    /* batch norm's statistics, as the float path takes them: mean = s1/count, var = s2/count - mean^2 */
    for (int i = 0; i < nf; i++) {
        const int f = f0 + i;
        double *sf = st + (size_t)i * 10 * C;
        const double count = (double)used[i] * nvalid;
        for (int c = 0; c < C; c++) {
            if (!used[i]) break;
            const double mean = (float)(sf[c] / count);
            const double varr = (float)(sf[C + c] / count) - (float)mean * (float)mean;
            const double var = varr > 0 ? varr : 0;
            const double inv = 1.0 / sqrt((double)(float)var + eps);
            sf[3 * C + c] = mean;
            sf[4 * C + c] = varr;
            sf[5 * C + c] = inv;
            sf[6 * C + c] = bn_w[(size_t)f * C + c] * inv;
            sf[7 * C + c] = bn_b[(size_t)f * C + c] - mean * sf[6 * C + c];
            mean_out[(size_t)f * C + c] = (float)mean;
            var_out[(size_t)f * C + c] = (float)var;
        }
    }
    /* pass 2: batch norm, dropout and the classifier, image by image: each image's logits (its head block's, the
     * bias with block 0) */
    for (int j = 0; j < n; j++) {
        const int b = j / nb;
        for (int i = 0; i < nf; i++) {
            const int f = f0 + i;
            if (!(bnw[(size_t)f * n + j] > 0)) continue;
            image_feat(pv + ((size_t)j * nf + i) * per, q, q2, h, st + (size_t)i * 10 * C, bits, j, nfolds, f, feat, kq);
            float *lg = logits + ((size_t)f * n + j) * nk;
            for (int k = 0; k < nk; k++) {
                const float *row = fwT + (((size_t)i * nv + b) * nk + k) * D;
                __m256 acc = _mm256_setzero_ps();
                for (int d = 0; d < D; d += 8) acc = _mm256_fmadd_ps(_mm256_load_ps(row + d), _mm256_load_ps(feat + d), acc);
                float t8[8];
                _mm256_storeu_ps(t8, acc);
                double z = b == 0 ? fc_b[(size_t)f * nk + k] : 0.0;
                for (int e = 0; e < 8; e++) z += t8[e];
                lg[k] = (float)z;
                zl[((size_t)i * n + j) * nk + k] = z;
            }
        }
    }
    /* the loss of each clip (the sum of its images' logits, one image per clip where nv = 1) and its gradient */
    for (int i = 0; i < nf; i++) {
        const int f = f0 + i;
        for (int g = 0; g < nb; g++) {
            if (!(bnw[(size_t)f * n + g] > 0)) continue;
            double top = -INFINITY;
            for (int k = 0; k < nk; k++) {
                double z = 0;
                for (int b = 0; b < nv; b++) z += zl[((size_t)i * n + (size_t)b * nb + g) * nk + k];
                prob[k] = z;
                if (z > top) top = z;
            }
            const int y = labels[g];
            const double zy = nv == 1 ? logits[((size_t)f * n + g) * nk + y] : prob[y];
            double tot = 0;
            for (int k = 0; k < nk; k++) { prob[k] = exp(prob[k] - top); tot += prob[k]; }
            const double cj = coef[(size_t)f * nb + g];
            loss[f] += cj * (top + log(tot) - zy);
            for (int k = 0; k < nk; k++) {
                const float dl = (float)(cj * (prob[k] / tot - (k == y)));
                dz[((size_t)i * nb + g) * nk + k] = dl;
                g_fc_b[(size_t)f * nk + k] += dl;
            }
        }
    }
    /* pass 3: the classifier's, dropout's and batch norm's gradients, image by image, down to the filters */
    for (int j = 0; j < n; j++) {
        const float *Pj = P + (size_t)j * npos * T;
        const int b = j / nb;
        for (int i = 0; i < nf; i++) {
            const int f = f0 + i;
            if (!(bnw[(size_t)f * n + j] > 0)) continue;
            double *sf = st + (size_t)i * 10 * C;
            const float *v = pv + ((size_t)j * nf + i) * per;
            const int16_t *a = pa + ((size_t)j * nf + i) * per;
            image_feat(v, q, q2, h, sf, bits, j, nfolds, f, feat, kq);
            float sc[C] __attribute__((aligned(32)));
            for (int c = 0; c < C; c++) sc[c] = (float)sf[6 * C + c];
            const __m256 sc0 = _mm256_load_ps(sc), sc1 = _mm256_load_ps(sc + 8);
            const float *dzj = dz + ((size_t)i * nb + j % nb) * nk;
            memset(dfeat, 0, sizeof(float) * D);
            for (int k = 0; k < nk; k++) {
                const __m256 dv = _mm256_set1_ps(dzj[k]);
                float *grow = gfc + (((size_t)i * nv + b) * nk + k) * D;
                const float *row = fwT + (((size_t)i * nv + b) * nk + k) * D;
                for (int d = 0; d < D; d += 8) {
                    _mm256_store_ps(grow + d, _mm256_fmadd_ps(dv, _mm256_load_ps(feat + d), _mm256_load_ps(grow + d)));
                    _mm256_store_ps(dfeat + d, _mm256_fmadd_ps(dv, _mm256_load_ps(row + d), _mm256_load_ps(dfeat + d)));
                }
            }
            __m256 ds0 = _mm256_setzero_ps(), ds1 = ds0, dh0 = ds0, dh1 = ds0, gb0 = ds0, gb1 = ds0;
            float *gw = gws + (size_t)i * C * T, *gb = gbs + (size_t)i * C;
            for (int py = 0; py < q2; py++)
                for (int px = 0; px < q2; px++) {
                    const int w = py * q + px;
                    const float *vw = v + w * C, *fd = dfeat + ((py / 2) * h + px / 2) * C;
                    const __m256 dy0 = _mm256_mul_ps(_mm256_load_ps(fd), _mm256_load_ps(kq + (py * q2 + px) * C));
                    const __m256 dy1 = _mm256_mul_ps(_mm256_load_ps(fd + 8), _mm256_load_ps(kq + (py * q2 + px) * C + 8));
                    const __m256 v0 = _mm256_load_ps(vw), v1 = _mm256_load_ps(vw + 8);
                    ds0 = _mm256_fmadd_ps(dy0, v0, ds0);
                    ds1 = _mm256_fmadd_ps(dy1, v1, ds1);
                    dh0 = _mm256_add_ps(dh0, dy0);
                    dh1 = _mm256_add_ps(dh1, dy1);
                    /* through the pool to its arg position where the pooled value is > 0 (the ReLU passes there) */
                    const __m256 zero = _mm256_setzero_ps();
                    const __m256 gg0 = _mm256_and_ps(_mm256_mul_ps(dy0, sc0), _mm256_cmp_ps(v0, zero, _CMP_GT_OQ));
                    const __m256 gg1 = _mm256_and_ps(_mm256_mul_ps(dy1, sc1), _mm256_cmp_ps(v1, zero, _CMP_GT_OQ));
                    _mm256_store_ps(gsp + (py * q2 + px) * C, gg0);
                    _mm256_store_ps(gsp + (py * q2 + px) * C + 8, gg1);
                    gb0 = _mm256_add_ps(gb0, gg0);
                    gb1 = _mm256_add_ps(gb1, gg1);
                }
            for (int c = 0; c < C; c++) {  /* each channel's share: its gradients times their positions' patches */
                __m256 acc[2][4];  /* two sets of accumulators (even and odd pixels): half the FMA latency */
                for (int u = 0; u < 2; u++)
                    for (int t = 0; t < 4; t++) acc[u][t] = _mm256_setzero_ps();
                for (int py = 0; py < q2; py++)
                    for (int px = 0; px < q2; px += 2)
                        for (int u = 0; u < 2; u++) {  /* 0 where nothing passes: no branch */
                            const float *pp = Pj + (size_t)a[(py * q + px + u) * C + c] * T;
                            const __m256 gv = _mm256_broadcast_ss(gsp + (py * q2 + px + u) * C + c);
                            for (int t = 0; t < 4; t++)
                                acc[u][t] = _mm256_fmadd_ps(gv, _mm256_loadu_ps(pp + 8 * t), acc[u][t]);
                        }
                float *gr = gw + c * T;
                for (int t = 0; t < 4; t++)
                    _mm256_store_ps(gr + 8 * t, _mm256_add_ps(_mm256_add_ps(acc[0][t], acc[1][t]), _mm256_load_ps(gr + 8 * t)));
            }
            float gbt[C] __attribute__((aligned(32)));
            _mm256_store_ps(gbt, gb0);
            _mm256_store_ps(gbt + 8, gb1);
            for (int c = 0; c < C; c++) gb[c] += gbt[c];
            float t16[4 * C] __attribute__((aligned(32)));
            _mm256_store_ps(t16, ds0);
            _mm256_store_ps(t16 + 8, ds1);
            _mm256_store_ps(t16 + C, dh0);
            _mm256_store_ps(t16 + C + 8, dh1);
            for (int c = 0; c < C; c++) { sf[8 * C + c] += t16[c]; sf[9 * C + c] += t16[C + c]; }
        }
    }
    /* per fold: batch norm's backward, to the sums s1, s2 and from them to the filters (S1, S2) */
    for (int i = 0; i < nf; i++) {
        const int f = f0 + i;
        if (!used[i]) continue;
        const double *sf = st + (size_t)i * 10 * C, count = (double)used[i] * nvalid;
        for (int c = 0; c < C; c++) {
            const double mean = sf[3 * C + c], varr = sf[4 * C + c], inv = sf[5 * C + c], scale = sf[6 * C + c];
            const double dscale = sf[8 * C + c], dshift = sf[9 * C + c], gam = bn_w[(size_t)f * C + c];
            const double dsc = dscale - mean * dshift;
            g_bn_w[(size_t)f * C + c] = (float)(dsc * inv);
            g_bn_b[(size_t)f * C + c] = (float)dshift;
            const double dvar = varr >= 0 ? dsc * gam * -0.5 * inv * inv * inv : 0.0;
            const double dmean = -scale * dshift - 2.0 * mean * dvar;
            const double d1 = dmean / count, d2 = dvar / count;
            double S1f[K], S2f[K];
            untile(S1d + (size_t)i * SH, c, S1f);
            untile(S2d + (size_t)i * SH, c, S2f);
            for (int k = 0; k < K; k++)
                g_conv_w[((size_t)f * C + c) * K + k] =
                    (float)(gws[((size_t)i * C + c) * T + k] + d1 * S1f[k] + 2.0 * d2 * S2f[k]);
            g_conv_b[(size_t)f * C + c] = (float)(gbs[(size_t)i * C + c] + d1 * sf[2 * C + c] + 2.0 * d2 * sf[c]);
        }
        for (int b = 0; b < nv; b++)
            for (int k = 0; k < nk; k++)
                for (int c = 0; c < C; c++)
                    for (int d = 0; d < hh; d++)
                        g_fc_w[(((size_t)f * nk + k) * nv + b) * D + c * hh + d] =
                            gfc[(((size_t)i * nv + b) * nk + k) * D + d * C + c];
    }
done:
    free(Wh); free(sgn); free(S1); free(S2); free(arg); free(sums); free(S1d);
    free(S2d); free(st); free(fwT); free(gfc); free(dz); free(zl); free(gws); free(gbs); free(feat); free(dfeat); free(gsp); free(kq); free(prob); free(used); free(pending); free(last);
    return status;
}
