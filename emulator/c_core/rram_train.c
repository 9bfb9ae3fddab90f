/*
 * rram_train.c - pulsed updates of soft-bounds device tiles (contract in rram_train.h).
 *
 * Speed (issue 18): an update walks only the coincidences. Each sample's column trains are also
 * stored transposed (one column bitmap per slot), so a row's coincident columns are the union of
 * the bitmaps of its set slots, found word by word; no (row, column) pair without a pulse is
 * visited. The pulses found are applied in chunks of structure-of-arrays lanes by a branch-free
 * device step (own exp/log, vectorized by the compiler; clones for AVX2 and AVX-512 chosen at run
 * time). Every lane computes exactly the same IEEE operations in every clone (no contraction into
 * FMA under -std=c11), so results do not depend on the CPU.
 */
#include "rram_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rram.h"
#include "rram_rng.h"

#define TRAIN_STREAM 0x7A11ULL
#define CHUNK 256  /* pulsed devices applied together */
#define Y_TINY 1e-300  /* distances to a bound below this are at the bound: no further step that way */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LANES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LANES
#endif

uint64_t rram_train_key(uint64_t seed, uint64_t stream) {
    return rram_key(seed, (int64_t)stream, TRAIN_STREAM);
}

/* ------------------------------------------------------------------ exp / log (vectorizable) */

static inline uint64_t bits_of(double x) { uint64_t u; memcpy(&u, &x, sizeof u); return u; }
static inline double double_of(uint64_t u) { double x; memcpy(&x, &u, sizeof x); return x; }

#define LN2_HI 6.93147180369123816490e-01  /* ln 2 split so that k * LN2_HI is exact for |k| < 2^20 */
#define LN2_LO 1.90821492927058770002e-10
#define SHIFT52 6755399441055744.0         /* 1.5 * 2^52: adding it rounds to an integer in the low bits */

/* Horner coefficients, highest power first: 1/n! for n = 13 .. 0, and 1/(2n + 1) for n = 11 .. 0. */
static const double EXP_TAYLOR[14] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                      1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                                      1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0};
static const double ATANH_SERIES[12] = {1.0 / 23.0, 1.0 / 21.0, 1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0,
                                        1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0};

/* e^x for x in [-708, 709] (clamped there), relative error ~2e-16: x = k ln2 + r, |r| <= ln2 / 2,
 * Taylor series of e^r to r^13 (remainder < 4e-18), 2^k built in the exponent field. */
static inline double t_exp(double x) {
    x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    double t = x * 1.4426950408889634 + SHIFT52;
    double kd = t - SHIFT52;
    int64_t k = (int64_t)(bits_of(t) - bits_of(SHIFT52));
    double r = (x - kd * LN2_HI) - kd * LN2_LO;
    double p = EXP_TAYLOR[0];
    for (int i = 1; i < 14; ++i) p = p * r + EXP_TAYLOR[i];
    return p * double_of((uint64_t)(k + 1023) << 52);
}

/* ln x for normal x > 0, relative error ~2e-16: x = 2^e m with m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, series to s^23 (remainder < 1e-18). */
static inline double t_log(double x) {
    uint64_t u = bits_of(x);
    double m = double_of((u & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL);
    double e = double_of(0x4330000000000000ULL | (u >> 52)) - (4503599627370496.0 + 1023.0);
    int big = m > 1.4142135623730951;
    m = big ? 0.5 * m : m;
    e = big ? e + 1.0 : e;
    double s = (m - 1.0) / (m + 1.0), s2 = s * s;
    double p = ATANH_SERIES[0];
    for (int i = 1; i < 12; ++i) p = p * s2 + ATANH_SERIES[i];
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * p);
}

/* ------------------------------------------------------------------ device step */

/* Decrease of the normalized distance y to the bound over one pulse of strength m: y - y', with
 * y' the integral of dy/dm = -y^gamma (the law of rram.c's soft_bound, so fitted devices behave as
 * measured): y' = y (1 + (gamma - 1) m y^(gamma - 1))^(-1 / (gamma - 1)), y e^-m for gamma = 1,
 * 0 once the base reaches 0 (the bound in one pulse). Branch-free so that lanes vectorize. */
static inline double step_y(double y, double gamma, double m) {
    int live = y > Y_TINY;
    double yy = live ? y : 1.0;
    double gm1 = gamma - 1.0;
    int unit = fabs(gm1) < 1e-9;
    double gs = unit ? 1.0 : gm1;
    double ly = t_log(yy);
    double base = 1.0 + gs * m * t_exp(gs * ly);
    int reach = !unit && !(base > 0.0);
    double e = unit ? -m : -t_log(base > 0.0 ? base : 1.0) / gs;
    double after = reach ? 0.0 : yy * t_exp(e);
    return live && m > 0.0 ? yy - after : 0.0;
}

/* Acklam's rational approximation on the central region (the same expression as rram_rng.h's
 * rram_inv_normal there, so the two agree bit for bit); tails are left to rram_inv_normal. */
static inline double normal_central(double p) {
    double q = p - 0.5, r = q * q;
    return (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r +
              1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q /
           (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r +
              6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0);
}
#define P_LOW 0.02425

/* Uniform in (0, 1) from the top 52 bits of a draw, converted without an int-to-double instruction. */
static inline double uniform52(uint64_t r) {
    return (double_of(0x4330000000000000ULL | (r >> 12)) - 4503599627370496.0 + 0.5) * (1.0 / 4503599627370496.0);
}

/* Pulsed devices of one chunk in structure-of-arrays form. Lane e is one pulse on one device:
 * w (weight), ref (the bound it moves towards), sgn (+1 up, -1 down), span, alpha, gamma of that
 * direction, and the counter of its cycle-to-cycle draw. */
#define PAD 8  /* lanes are processed in blocks of PAD (full vectors in every clone) */
typedef struct {
    double w[CHUNK + PAD], ref[CHUNK + PAD], sgn[CHUNK + PAD], span[CHUNK + PAD], alpha[CHUNK + PAD];
    double gamma[CHUNK + PAD], dw[CHUNK + PAD], u[CHUNK + PAD], xi[CHUNK + PAD];
    uint64_t ctr[CHUNK + PAD], key[CHUNK + PAD];
    int64_t k[CHUNK + PAD];
    int32_t left[CHUNK + PAD];
} lanes_t;

/* One pulse on every lane [0, m): noise-free step, then the noise draws, then the weights. Lanes
 * [m, m rounded up to PAD) are padding with harmless values (their results are never stored). */
static inline __attribute__((always_inline)) void pulse_lanes_body(lanes_t *restrict L, int32_t m, double c2c) {
    const int32_t mp = (m + PAD - 1) / PAD * PAD;
    for (int32_t e = m; e < mp; ++e) {
        L->w[e] = 0.0; L->ref[e] = 1.0; L->sgn[e] = 1.0; L->span[e] = 2.0; L->alpha[e] = 0.0;
        L->gamma[e] = 1.0; L->key[e] = 0; L->ctr[e] = 0;
    }
    for (int32_t e0 = 0; e0 < mp; e0 += PAD) {
        for (int32_t l = 0; l < PAD; ++l) {
            const int32_t e = e0 + l;
            double y = L->sgn[e] * (L->ref[e] - L->w[e]) / L->span[e];
            L->dw[e] = L->sgn[e] * (step_y(y, L->gamma[e], L->alpha[e]) * L->span[e]);
        }
    }
    if (c2c > 0.0) {
        for (int32_t e0 = 0; e0 < mp; e0 += PAD) {
            for (int32_t l = 0; l < PAD; ++l) {
                const int32_t e = e0 + l;
                L->u[e] = uniform52(rram_draw(L->key[e], L->ctr[e]));
                L->xi[e] = normal_central(L->u[e]);
            }
        }
        for (int32_t e = 0; e < m; ++e)  /* ~5 % of lanes: the tails, with libm's log and sqrt */
            if (!(L->u[e] > P_LOW && L->u[e] < 1.0 - P_LOW)) L->xi[e] = rram_inv_normal(L->u[e]);
        for (int32_t e0 = 0; e0 < mp; e0 += PAD)
            for (int32_t l = 0; l < PAD; ++l) L->w[e0 + l] = L->w[e0 + l] + L->dw[e0 + l] * (1.0 + c2c * L->xi[e0 + l]);
    } else {
        for (int32_t e0 = 0; e0 < mp; e0 += PAD)
            for (int32_t l = 0; l < PAD; ++l) L->w[e0 + l] = L->w[e0 + l] + L->dw[e0 + l];
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The same body compiled for AVX-512 (full 512-bit vectors), AVX2 and baseline x86-64. */
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
static void pulse_lanes_v4(lanes_t *restrict L, int32_t m, double c2c) { pulse_lanes_body(L, m, c2c); }
__attribute__((target("arch=x86-64-v3")))
static void pulse_lanes_v3(lanes_t *restrict L, int32_t m, double c2c) { pulse_lanes_body(L, m, c2c); }
static void pulse_lanes_base(lanes_t *restrict L, int32_t m, double c2c) { pulse_lanes_body(L, m, c2c); }

static void pulse_lanes(lanes_t *restrict L, int32_t m, double c2c) {
    static void (*impl)(lanes_t *restrict, int32_t, double) = 0;  /* benign race: same value */
    if (!impl) {
        __builtin_cpu_init();
        impl = __builtin_cpu_supports("x86-64-v4") ? pulse_lanes_v4
             : __builtin_cpu_supports("x86-64-v3") ? pulse_lanes_v3 : pulse_lanes_base;
    }
    impl(L, m, c2c);
}
#else
static void pulse_lanes(lanes_t *restrict L, int32_t m, double c2c) { pulse_lanes_body(L, m, c2c); }
#endif

/* Noise counter of pulse p (0-based) on device k within one keyed batch of pulses. */
static inline uint64_t noise_counter(int64_t k, int32_t p) { return ((uint64_t)k << 6) + (uint64_t)p; }

/* Queue device k with signed pulse count n (n != 0) as lane e; its lines are prefetched so that
 * the gather in flush_lanes finds them in cache. */
static inline void lane_queue(const rram_train_tile *t, lanes_t *L, int32_t e, int64_t k, int32_t n,
                              uint64_t key) {
    L->k[e] = k;
    L->key[e] = key;
    L->left[e] = n;
    __builtin_prefetch(t->w + k, 0, 3);
    __builtin_prefetch(t->dev + RRAM_TRAIN_DEV_STRIDE * k, 0, 3);
}

/* Gather the queued lanes' weights and device parameters (packed: one cache line per device). */
static void lanes_gather(const rram_train_tile *t, lanes_t *L, int32_t m) {
    for (int32_t e = 0; e < m; ++e) {
        const int64_t k = L->k[e];
        const int32_t n = L->left[e];
        const int off = n > 0 ? 0 : 1;
        const double *p = t->dev + RRAM_TRAIN_DEV_STRIDE * k;
        L->left[e] = n > 0 ? n : -n;
        L->w[e] = t->w[k];
        L->ref[e] = p[RRAM_TRAIN_DEV_W_MAX + off];
        L->sgn[e] = n > 0 ? 1.0 : -1.0;
        L->span[e] = p[RRAM_TRAIN_DEV_SPAN];
        L->alpha[e] = p[RRAM_TRAIN_DEV_ALPHA_UP + off];
        L->gamma[e] = p[RRAM_TRAIN_DEV_GAMMA_UP + off];
        L->ctr[e] = noise_counter(k, 0);
    }
}

/* Apply the m loaded lanes (distinct devices) pulse by pulse; lanes drop out as their count ends. */
static void apply_gathered(rram_train_tile *t, lanes_t *L, int32_t m) {
    while (m > 0) {
        pulse_lanes(L, m, t->c2c_sigma);
        int32_t keep = 0, more = 0;
        for (int32_t e = 0; e < m; ++e) more |= L->left[e] > 1;
        if (!more) {  /* the common case of sparse updates: one pulse per device */
            for (int32_t e = 0; e < m; ++e) t->w[L->k[e]] = L->w[e];
            return;
        }
        for (int32_t e = 0; e < m; ++e) {
            if (--L->left[e] == 0) {
                t->w[L->k[e]] = L->w[e];
                continue;
            }
            if (keep != e) {
                L->k[keep] = L->k[e]; L->left[keep] = L->left[e]; L->w[keep] = L->w[e];
                L->ref[keep] = L->ref[e]; L->sgn[keep] = L->sgn[e]; L->span[keep] = L->span[e];
                L->alpha[keep] = L->alpha[e]; L->gamma[keep] = L->gamma[e]; L->ctr[keep] = L->ctr[e];
                L->key[keep] = L->key[e];
            }
            L->ctr[keep] += 1;  /* the device's next pulse draws the next noise value */
            ++keep;
        }
        m = keep;
    }
}

static void flush_lanes(rram_train_tile *t, lanes_t *L, int32_t m) {
    lanes_gather(t, L, m);
    apply_gathered(t, L, m);
}

/* ------------------------------------------------------------------ stochastic trains */

/* A train of `bl` slots, each set with probability thr / 2^32 (thr = floor(p 2^32)). Eight slots per
 * 64-bit draw: a slot's byte b is compared with the threshold's top byte; on a tie (1 in 256) 24
 * more bits decide, so each slot is exactly a 32-bit uniform below thr. */
static inline uint64_t train_bits(rram_train_tile *t, uint32_t thr, int32_t bl) {
    const uint32_t hi = thr >> 24, lo = thr & 0xFFFFFFu;
    uint64_t bits = 0;
    for (int32_t s = 0; s < bl; s += 8) {
        uint64_t r = rram_draw(t->key, t->counter++);
        int32_t n = bl - s < 8 ? bl - s : 8;
        for (int32_t l = 0; l < n; ++l) {
            uint32_t b = (uint32_t)(r >> (8 * l)) & 0xFFu;
            if (b < hi) {
                bits |= 1ULL << (s + l);
            } else if (b == hi && lo) {
                if ((rram_draw(t->key, t->counter++) & 0xFFFFFFu) < lo) bits |= 1ULL << (s + l);
            }
        }
    }
    return bits;
}

/* Train of a firing probability p >= 0 (p >= 1: every slot). */
static inline uint64_t train_of(rram_train_tile *t, double p, int32_t bl) {
    if (!(p > 0.0)) return 0;
    if (p >= 1.0) return bl >= 64 ? ~0ULL : ((1ULL << bl) - 1ULL);
    uint32_t thr = (uint32_t)(p * 4294967296.0);
    return thr ? train_bits(t, thr, bl) : 0;
}

static int tile_ok(const rram_train_tile *t) {
    return t && t->rows > 0 && t->cols > 0 && t->rows <= RRAM_TRAIN_MAX_DIM && t->cols <= RRAM_TRAIN_MAX_DIM &&
           t->w && t->w_max && t->w_min && t->alpha_up && t->alpha_down && t->gamma_up && t->gamma_down &&
           t->dev && t->c2c_sigma >= 0.0;
}

int rram_train_pack(const rram_train_tile *t, double *dev_out) {
    if (!t || !dev_out || t->rows <= 0 || t->cols <= 0 || !t->w_max || !t->w_min || !t->alpha_up ||
        !t->alpha_down || !t->gamma_up || !t->gamma_down)
        return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (int64_t k = 0; k < total; ++k) {
        double *p = dev_out + RRAM_TRAIN_DEV_STRIDE * k;
        p[RRAM_TRAIN_DEV_W_MAX] = t->w_max[k];
        p[RRAM_TRAIN_DEV_W_MIN] = t->w_min[k];
        p[RRAM_TRAIN_DEV_ALPHA_UP] = t->alpha_up[k];
        p[RRAM_TRAIN_DEV_ALPHA_DOWN] = t->alpha_down[k];
        p[RRAM_TRAIN_DEV_GAMMA_UP] = t->gamma_up[k];
        p[RRAM_TRAIN_DEV_GAMMA_DOWN] = t->gamma_down[k];
        p[RRAM_TRAIN_DEV_SPAN] = t->w_max[k] - t->w_min[k];
        p[7] = 0.0;
    }
    return RRAM_OK;
}

#define WORDS (RRAM_TRAIN_MAX_DIM / 64)
#define GROUP_BYTES (384 * 1024)  /* scratch of one group of samples */

/* What the update keeps of each sample of a group: firing probability factor of the rows, the key
 * of its cycle-to-cycle draws, the columns' trains, which columns are negative, and per slot the
 * bitmap of firing columns (the trains transposed). */
typedef struct {
    double cd;
    uint64_t skey;
    int32_t active;  /* any column fired */
} sample_t;

LANES int rram_train_update(rram_train_tile *t, const double *x, const double *d, int32_t batch,
                            const rram_train_update_cfg *cfg, int64_t *pulses_out) {
    if (!tile_ok(t) || !x || !d || batch < 0 || !cfg || cfg->bl < 1 || cfg->bl > RRAM_TRAIN_MAX_BL ||
        !(cfg->lr > 0.0) || !(cfg->dw_min > 0.0))
        return RRAM_E_ARG;
    const int32_t rows = t->rows, cols = t->cols, bl = cfg->bl;
    const int32_t nw = (cols + 63) / 64;
    const size_t per_sample = sizeof(uint64_t) * ((size_t)cols + (size_t)nw * (bl + 1)) + sizeof(sample_t);
    int32_t group = (int32_t)(GROUP_BYTES / per_sample);
    group = group < 1 ? 1 : (group > batch ? (batch > 0 ? batch : 1) : group);
    uint64_t *xbits = malloc(sizeof(uint64_t) * (size_t)group * cols);         /* [g][cols] */
    uint64_t *slots = malloc(sizeof(uint64_t) * (size_t)group * bl * nw);     /* [g][bl][nw] */
    uint64_t *xneg = malloc(sizeof(uint64_t) * (size_t)group * nw);           /* [g][nw] */
    sample_t *smp = malloc(sizeof(sample_t) * (size_t)group);
    lanes_t *lanes = malloc(sizeof(lanes_t));
    if (!xbits || !slots || !xneg || !smp || !lanes) {
        free(xbits); free(slots); free(xneg); free(smp); free(lanes);
        return RRAM_E_NOMEM;
    }
    uint64_t u[WORDS], queued[WORDS];
    const double k_prod = cfg->lr / ((double)bl * cfg->dw_min);  /* cx * cd */
    int64_t pulses = 0;
    for (int32_t b0 = 0; b0 < batch; b0 += group) {
        const int32_t ng = batch - b0 < group ? batch - b0 : group;
        /* Column trains of the group's samples, in sample order. */
        for (int32_t g = 0; g < ng; ++g) {
            const double *xb = x + (size_t)(b0 + g) * cols, *db = d + (size_t)(b0 + g) * rows;
            sample_t *sm = &smp[g];
            sm->active = 0;
            double xmax = 0.0, dmax = 0.0;
            for (int32_t j = 0; j < cols; ++j) xmax = fmax(xmax, fabs(xb[j]));
            for (int32_t i = 0; i < rows; ++i) dmax = fmax(dmax, fabs(db[i]));
            if (!(xmax > 0.0) || !(dmax > 0.0) || !isfinite(xmax) || !isfinite(dmax)) continue;
            double cx;
            if (cfg->update_management) {
                /* Equal largest firing probability on both sides: cx xmax = cd dmax. */
                cx = sqrt(k_prod * dmax / xmax);
                sm->cd = sqrt(k_prod * xmax / dmax);
            } else {
                cx = sm->cd = sqrt(k_prod);
            }
            uint64_t *xg = xbits + (size_t)g * cols, *sg = slots + (size_t)g * bl * nw, *ng_ = xneg + (size_t)g * nw;
            memset(sg, 0, sizeof(uint64_t) * (size_t)bl * nw);
            memset(ng_, 0, sizeof(uint64_t) * (size_t)nw);
            for (int32_t j = 0; j < cols; ++j) {
                uint64_t bits = train_of(t, fabs(xb[j]) * cx, bl);
                xg[j] = bits;
                if (!bits) continue;
                sm->active = 1;
                uint64_t bit = 1ULL << (j & 63);
                if (xb[j] < 0.0) ng_[j >> 6] |= bit;
                for (uint64_t m = bits; m; m &= m - 1) sg[(size_t)__builtin_ctzll(m) * nw + (j >> 6)] |= bit;
            }
            /* Key of this sample's cycle-to-cycle draws: pulse p on device k draws at counter
             * 64 k + p, whatever the order in which the pulses are found. */
            if (sm->active) sm->skey = rram_draw(t->key, t->counter++);
        }
        /* Row by row, every sample of the group in order: a row's weights and device lines stay in
         * cache across the group. Pulses on one device are applied in sample order (the lanes are
         * flushed before a sample's pulses would meet a device already queued). */
        int32_t m = 0;  /* queued lanes; rows are distinct devices, so lanes carry over from row to row */
        for (int32_t i = 0; i < rows; ++i) {
            const int64_t base = (int64_t)i * cols;
            memset(queued, 0, sizeof(uint64_t) * (size_t)nw);  /* this row's devices among the lanes */
            for (int32_t g = 0; g < ng; ++g) {
                const sample_t *sm = &smp[g];
                if (!sm->active) continue;
                const double dv = d[(size_t)(b0 + g) * rows + i];
                const uint64_t di = train_of(t, fabs(dv) * sm->cd, bl);
                if (!di) continue;
                const uint64_t *sg = slots + (size_t)g * bl * nw, *xg = xbits + (size_t)g * cols;
                const uint64_t *ngw = xneg + (size_t)g * nw;
                const int single = (di & (di - 1)) == 0;
                uint64_t meet = 0;
                if (single) {
                    const uint64_t *sc = sg + (size_t)__builtin_ctzll(di) * nw;
                    for (int32_t q = 0; q < nw; ++q) { u[q] = sc[q]; meet |= u[q] & queued[q]; }
                } else {
                    memset(u, 0, sizeof(uint64_t) * (size_t)nw);
                    for (uint64_t s = di; s; s &= s - 1) {
                        const uint64_t *sc = sg + (size_t)__builtin_ctzll(s) * nw;
                        for (int32_t q = 0; q < nw; ++q) u[q] |= sc[q];
                    }
                    for (int32_t q = 0; q < nw; ++q) meet |= u[q] & queued[q];
                }
                if (meet) {
                    flush_lanes(t, lanes, m);
                    m = 0;
                    memset(queued, 0, sizeof(uint64_t) * (size_t)nw);
                }
                /* Gradient descent: w moves against sign(d x), so up where d x < 0. */
                const uint64_t flip = dv < 0.0 ? ~0ULL : 0ULL;
                for (int32_t q = 0; q < nw; ++q) {
                    const uint64_t upw = ngw[q] ^ flip;  /* columns where d x < 0: this row's pulses go up */
                    queued[q] |= u[q];
                    for (uint64_t c = u[q]; c; c &= c - 1) {
                        const int32_t j = q * 64 + __builtin_ctzll(c);
                        const int32_t n = single ? 1 : __builtin_popcountll(di & xg[j]);
                        const int up = (int)((upw >> (j & 63)) & 1ULL);
                        if (m == CHUNK) {  /* the queued lanes are distinct devices, this one too */
                            flush_lanes(t, lanes, m);
                            m = 0;
                        }
                        lane_queue(t, lanes, m++, base + j, up ? n : -n, sm->skey);
                        pulses += n;
                    }
                }
            }
        }
        flush_lanes(t, lanes, m);
    }
    free(xbits); free(slots); free(xneg); free(smp); free(lanes);
    if (pulses_out) *pulses_out = pulses;
    return RRAM_OK;
}

int rram_train_pulse(rram_train_tile *t, const int64_t *idx, const int32_t *n_pulses, size_t n) {
    if (!tile_ok(t) || (n && (!idx || !n_pulses))) return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (size_t c = 0; c < n; ++c)
        if (idx[c] < 0 || idx[c] >= total) return RRAM_E_ARG;
    /* One key per call; pulse p of list entry c draws at counter 2^32 c + p. Entries are applied
     * in list order, so a device listed twice sees its first entry's pulses before the second's. */
    lanes_t lanes[1];
    const uint64_t skey = rram_draw(t->key, t->counter++);
    for (size_t c = 0; c < n; ++c) {
        if (!n_pulses[c]) continue;
        lane_queue(t, lanes, 0, idx[c], n_pulses[c], skey);
        lanes_gather(t, lanes, 1);
        lanes->ctr[0] = (uint64_t)c << 32;
        apply_gathered(t, lanes, 1);
    }
    return RRAM_OK;
}

int rram_train_steps(const rram_train_tile *t, double *up_out, double *down_out) {
    if (!tile_ok(t)) return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (int64_t k = 0; k < total; ++k) {
        double hi = t->w_max[k], lo = t->w_min[k], span = hi - lo, w = t->w[k];
        double yu = span > 0.0 ? (hi - w) / span : 0.0, yd = span > 0.0 ? (w - lo) / span : 0.0;
        if (up_out) up_out[k] = step_y(yu, t->gamma_up[k], t->alpha_up[k]) * span;
        if (down_out) down_out[k] = step_y(yd, t->gamma_down[k], t->alpha_down[k]) * span;
    }
    return RRAM_OK;
}
