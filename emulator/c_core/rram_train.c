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

#if defined(__GNUC__) && !defined(__clang__)
/* Selects between float results may be if-converted (no trap is ever looked at): without this the
 * vectorizer leaves the device step scalar. Values are unchanged: no reassociation, no contraction. */
#pragma GCC optimize("no-trapping-math")
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rram.h"
#include "rram_rng.h"

#define TRAIN_STREAM 0x7A11ULL
#define CHUNK 256  /* pulsed devices applied together */

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LANES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LANES
#endif

uint64_t rram_train_key(uint64_t seed, uint64_t stream) {
    return rram_key(seed, (int64_t)stream, TRAIN_STREAM);
}

/* ------------------------------------------------------------------ float32 exp / log (vectorizable) */

static inline uint32_t bits_of(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static inline float float_of(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

#define LN2_HI 0.693359375f      /* ln 2 split so that k * LN2_HI is exact for |k| < 2^14 */
#define LN2_LO -2.12194440e-4f
#define SHIFT23 12582912.0f      /* 1.5 * 2^23: adding it rounds to an integer in the low bits */

/* e^r - 1 for |r| <= ln2 / 2: Taylor series to r^7 (relative remainder < 2e-8, below float32's 6e-8). */
static inline float expm1_reduced(float r) {
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r;
}

/* x = k ln2 + r with |r| <= ln2 / 2; returns r and 2^k (x in [-87, 88], so 2^k is a normal float). */
static inline float exp_reduce(float x, float *two_k) {
    float t = x * 1.44269504f + SHIFT23;
    float kd = t - SHIFT23;
    int32_t k = (int32_t)(bits_of(t) - bits_of(SHIFT23));
    *two_k = float_of((uint32_t)(k + 127) << 23);
    return (x - kd * LN2_HI) - kd * LN2_LO;
}

/* e^x, x clamped to [-87, 88] (no overflow, no subnormal result), relative error ~1e-7. */
static inline float f_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float tk, r = exp_reduce(x, &tk);
    return tk + tk * expm1_reduced(r);
}

/* 1 - e^u for u <= 0 (clamped to [-30, 0]), without cancellation for small |u|: 1 - 2^k (1 + expm1(r)). */
static inline float one_minus_exp(float u) {
    u = u < -30.0f ? -30.0f : (u > 0.0f ? 0.0f : u);
    float tk, r = exp_reduce(u, &tk);
    return (1.0f - tk) - tk * expm1_reduced(r);
}

/* ln x for a normal float x > 0, relative error ~1e-7: x = 2^e m, m in [sqrt(1/2), sqrt(2)),
 * ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, series to s^9 (remainder < 3e-9). */
static inline float f_log(float x) {
    uint32_t u = bits_of(x);
    float m = float_of((u & 0x007FFFFFu) | 0x3F800000u);
    float e = (float)((int32_t)(u >> 23) - 127);
    int big = m > 1.41421356f;
    const float mh = 0.5f * m, e1 = e + 1.0f;  /* both sides computed: selects, no branches */
    m = big ? mh : m;
    e = big ? e1 : e;
    float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
    float p = 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return e * LN2_HI + (e * LN2_LO + 2.0f * s * p);
}

/* ------------------------------------------------------------------ device step */

#define Y_TINY 1e-30f  /* distances to a bound below this are at the bound: no further step that way */

/* Decrease of the normalized distance y to the bound over one pulse of strength m: y - y', with
 * y' the integral of dy/dm = -y^gamma (the law of rram.c's soft_bound, so fitted devices behave as
 * measured): y' = y (1 + g m y^g)^(-1 / g) with g = gamma - 1 (g1 here), y e^-m for g = 0, 0 once
 * the base reaches 0 (the bound in one pulse). Computed as y (1 - e^u), u = -log1p(g m y^g) / g,
 * in float32 without cancellation (a weak pulse's step m y^gamma keeps full float32 precision).
 * Branch-free so that lanes vectorize. */
static inline float step_y(float y, float g1, float m) {
    const float yy = y > Y_TINY ? y : 1.0f, mm = y > Y_TINY ? m : 0.0f;  /* at the bound: no step */
    const float gs = fabsf(g1) < 1e-7f ? 1.0f : g1;
    float z = gs * mm * f_exp(gs * f_log(yy));
    z = z < -2.0f ? -2.0f : (z > 1e30f ? 1e30f : z);
    const float base = 1.0f + z;
    const float bs = base > 0.0f ? base : 1.0f, zs = base > 0.0f ? z : 0.0f;
    const float l1p = f_log(bs) + (zs - (bs - 1.0f)) / bs;  /* log1p(z): the rounding of 1 + z corrected */
    /* base <= 0 (only for gamma < 1): the bound in one pulse; u -> -inf gives 1 - e^u = 1 exactly */
    const float ug = -(base > 0.0f ? l1p : -1e30f) / gs;
    const float u = fabsf(g1) < 1e-7f ? -mm : ug;
    return yy * one_minus_exp(u);
}

/* Standard normal from a 23-bit uniform u = (k + 0.5) 2^-23 (so 1 - u and u - 0.5 are exact):
 * Acklam's rational approximation (relative error ~1e-9, here float32), central region and tails
 * both computed and one selected, so that lanes vectorize. */
#define P_LOW 0.02425f
static inline float normal_of(uint64_t r) {
    float u = ((float)(int32_t)(r >> 41) + 0.5f) * (1.0f / 8388608.0f);
    float q = u - 0.5f, rr = q * q;
    float xc = (((((-3.969683028665376e+01f * rr + 2.209460984245205e+02f) * rr - 2.759285104469687e+02f) * rr +
                  1.383577518672690e+02f) * rr - 3.066479806614716e+01f) * rr + 2.506628277459239e+00f) * q /
               (((((-5.447609879822406e+01f * rr + 1.615858368580409e+02f) * rr - 1.556989798598866e+02f) * rr +
                  6.680131188771972e+01f) * rr - 1.328068155288572e+01f) * rr + 1.0f);
    float um = 1.0f - u;
    float pt = u < 0.5f ? u : um;
    float qt = sqrtf(-2.0f * f_log(pt));
    float xt = (((((-7.784894002430293e-03f * qt - 3.223964580411365e-01f) * qt - 2.400758277161838e+00f) * qt -
                  2.549732539343734e+00f) * qt + 4.374664141464968e+00f) * qt + 2.938163982698783e+00f) /
               ((((7.784695709041462e-03f * qt + 3.224671290700398e-01f) * qt + 2.445134137142996e+00f) * qt +
                 3.754408661907416e+00f) * qt + 1.0f);
    float xn = -xt;
    xt = u < 0.5f ? xt : xn;
    return ((u > P_LOW) & (u < 1.0f - P_LOW)) ? xc : xt;
}

/* Pulsed devices of one chunk in structure-of-arrays form. Lane e is one pulse on one device:
 * w (weight), ref (the bound it moves towards), sgn (+1 up, -1 down), span, alpha, gamma - 1 of
 * that direction, and the counter of its cycle-to-cycle draw. float32: 16 lanes per AVX-512 vector. */
#define PAD 16  /* lanes are processed in blocks of PAD (full vectors in every clone) */
typedef struct {
    float w[CHUNK + PAD], ref[CHUNK + PAD], sgn[CHUNK + PAD], span[CHUNK + PAD], alpha[CHUNK + PAD];
    float g1[CHUNK + PAD], dw[CHUNK + PAD];
    uint64_t ctr[CHUNK + PAD], key[CHUNK + PAD];
    int64_t k[CHUNK + PAD];
    int32_t left[CHUNK + PAD];
} lanes_t;

/* One pulse on every lane [0, m): noise-free step, noise draw, new weight. Lanes [m, m rounded up
 * to PAD) are padding with harmless values (their results are never stored). */
static inline __attribute__((always_inline)) void pulse_lanes_body(lanes_t *restrict L, int32_t m, float c2c) {
    const int32_t mp = (m + PAD - 1) / PAD * PAD;
    for (int32_t e = m; e < mp; ++e) {
        L->w[e] = 0.0f; L->ref[e] = 1.0f; L->sgn[e] = 1.0f; L->span[e] = 2.0f; L->alpha[e] = 0.0f;
        L->g1[e] = 0.0f; L->key[e] = 0; L->ctr[e] = 0;
    }
    for (int32_t e0 = 0; e0 < mp; e0 += PAD) {
        for (int32_t l = 0; l < PAD; ++l) {
            const int32_t e = e0 + l;
            float y = L->sgn[e] * (L->ref[e] - L->w[e]) / L->span[e];
            L->dw[e] = L->sgn[e] * (step_y(y, L->g1[e], L->alpha[e]) * L->span[e]);
        }
    }
    if (c2c > 0.0f) {
        for (int32_t e0 = 0; e0 < mp; e0 += PAD)
            for (int32_t l = 0; l < PAD; ++l) {
                const int32_t e = e0 + l;
                L->w[e] = L->w[e] + L->dw[e] * (1.0f + c2c * normal_of(rram_draw(L->key[e], L->ctr[e])));
            }
    } else {
        for (int32_t e0 = 0; e0 < mp; e0 += PAD)
            for (int32_t l = 0; l < PAD; ++l) L->w[e0 + l] = L->w[e0 + l] + L->dw[e0 + l];
    }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
/* The same body compiled for AVX-512 (full 512-bit vectors), AVX2 and baseline x86-64. */
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
static void pulse_lanes_v4(lanes_t *restrict L, int32_t m, float c2c) { pulse_lanes_body(L, m, c2c); }
__attribute__((target("arch=x86-64-v3")))
static void pulse_lanes_v3(lanes_t *restrict L, int32_t m, float c2c) { pulse_lanes_body(L, m, c2c); }
static void pulse_lanes_base(lanes_t *restrict L, int32_t m, float c2c) { pulse_lanes_body(L, m, c2c); }

static void pulse_lanes(lanes_t *restrict L, int32_t m, float c2c) {
    static void (*impl)(lanes_t *restrict, int32_t, float) = 0;  /* benign race: same value */
    if (!impl) {
        __builtin_cpu_init();
        impl = __builtin_cpu_supports("x86-64-v4") ? pulse_lanes_v4
             : __builtin_cpu_supports("x86-64-v3") ? pulse_lanes_v3 : pulse_lanes_base;
    }
    impl(L, m, c2c);
}
#else
static void pulse_lanes(lanes_t *restrict L, int32_t m, float c2c) { pulse_lanes_body(L, m, c2c); }
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

/* Gather the queued lanes' weights and device parameters (packed: 32 bytes per device). */
static void lanes_gather(const rram_train_tile *t, lanes_t *L, int32_t m) {
    for (int32_t e = 0; e < m; ++e) {
        const int64_t k = L->k[e];
        const int32_t n = L->left[e];
        const int off = n > 0 ? 0 : 1;
        const float *p = t->dev + RRAM_TRAIN_DEV_STRIDE * k;
        L->left[e] = n > 0 ? n : -n;
        L->w[e] = (float)t->w[k];
        L->ref[e] = p[RRAM_TRAIN_DEV_W_MAX + off];
        L->sgn[e] = n > 0 ? 1.0f : -1.0f;
        L->span[e] = p[RRAM_TRAIN_DEV_SPAN];
        L->alpha[e] = p[RRAM_TRAIN_DEV_ALPHA_UP + off];
        L->g1[e] = p[RRAM_TRAIN_DEV_GM1_UP + off];
        L->ctr[e] = noise_counter(k, 0);
    }
}

/* Apply the m loaded lanes (distinct devices) pulse by pulse; lanes drop out as their count ends. */
static void apply_gathered(rram_train_tile *t, lanes_t *L, int32_t m) {
    const float c2c = (float)t->c2c_sigma;
    while (m > 0) {
        pulse_lanes(L, m, c2c);
        int32_t keep = 0, more = 0;
        for (int32_t e = 0; e < m; ++e) more |= L->left[e] > 1;
        if (!more) {  /* the common case of sparse updates: one pulse per device */
            for (int32_t e = 0; e < m; ++e) t->w[L->k[e]] = (double)L->w[e];
            return;
        }
        for (int32_t e = 0; e < m; ++e) {
            if (--L->left[e] == 0) {
                t->w[L->k[e]] = (double)L->w[e];
                continue;
            }
            if (keep != e) {
                L->k[keep] = L->k[e]; L->left[keep] = L->left[e]; L->w[keep] = L->w[e];
                L->ref[keep] = L->ref[e]; L->sgn[keep] = L->sgn[e]; L->span[keep] = L->span[e];
                L->alpha[keep] = L->alpha[e]; L->g1[keep] = L->g1[e]; L->ctr[keep] = L->ctr[e];
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

/* Keys of one update, all derived from one draw of the tile's stream: the trains', their tie
 * refinements' and the per-sample cycle-to-cycle keys. Every draw of an update is a pure function
 * of (key, train or device, slot), so nothing depends on the order in which it is made. */
#define TIE_SALT 0x71E5A1D0C0FFEE01ULL
#define NOISE_SALT 0x0D15EA5E5EED1234ULL
typedef struct {
    uint64_t train, tie, noise;
} update_keys_t;

#define BYTES_HI 0x8080808080808080ULL
#define BYTES_LO7 0x7F7F7F7F7F7F7F7FULL
#define BYTES_ONE 0x0101010101010101ULL

/* High bit of byte l set iff byte l of r is below h (1 <= h <= 255), branch-free (SWAR). */
static inline uint64_t bytes_below(uint64_t r, uint32_t h) {
    const uint64_t g = (uint64_t)(h - 1) * BYTES_ONE;  /* b < h <=> b <= g */
    const uint64_t t = (g | BYTES_HI) - (r & BYTES_LO7);  /* high bit: low 7 bits of g >= those of b */
    return ((~r & g) | (~(r ^ g) & t)) & BYTES_HI;
}

/* High bit of byte l set iff byte l of r equals h (0 <= h <= 255). */
static inline uint64_t bytes_equal(uint64_t r, uint32_t h) {
    const uint64_t z = r ^ ((uint64_t)h * BYTES_ONE);
    return ~(((z & BYTES_LO7) + BYTES_LO7) | z) & BYTES_HI;
}

/* The eight high bits of a byte mask as bits 0..7 (byte l -> bit l). */
static inline uint64_t byte_mask_bits(uint64_t m) { return ((m >> 7) * 0x0102040810204080ULL) >> 56; }

/* Train number `id` of `bl` slots, each set with probability thr / 2^32 (thr = floor(p 2^32)).
 * Eight slots per 64-bit draw (draw q of the train at counter 8 id + q): a slot's byte b is compared
 * with the threshold's top byte; on a tie (1 in 256) 24 bits of the slot's own tie draw decide, so
 * each slot is exactly a 32-bit uniform below thr. */
static inline uint64_t train_bits(const update_keys_t *uk, uint64_t id, uint32_t thr, int32_t bl) {
    const uint32_t hi = thr >> 24, lo = thr & 0xFFFFFFu;
    uint64_t bits = 0, ties = 0;
    for (int32_t s = 0; s < bl; s += 8) {
        const uint64_t r = rram_draw(uk->train, 8 * id + (uint64_t)(s >> 3));
        if (hi) bits |= byte_mask_bits(bytes_below(r, hi)) << s;
        if (lo) ties |= byte_mask_bits(bytes_equal(r, hi)) << s;
    }
    const uint64_t used = bl >= 64 ? ~0ULL : ((1ULL << bl) - 1ULL);
    for (ties &= used; ties; ties &= ties - 1) {
        const int32_t sl = __builtin_ctzll(ties);
        if ((rram_draw(uk->tie, 64 * id + (uint64_t)sl) & 0xFFFFFFu) < lo) bits |= 1ULL << sl;
    }
    return bits & used;
}

/* Train of a firing probability p >= 0 (p >= 1: every slot). */
static inline uint64_t train_of(const update_keys_t *uk, uint64_t id, double p, int32_t bl) {
    if (!(p > 0.0)) return 0;
    if (p >= 1.0) return bl >= 64 ? ~0ULL : ((1ULL << bl) - 1ULL);
    uint32_t thr = (uint32_t)(p * 4294967296.0);
    return thr ? train_bits(uk, id, thr, bl) : 0;
}

/* Train numbers: column j of sample b, row i of sample b. */
static inline uint64_t col_train(int32_t b, int32_t j) { return (2 * (uint64_t)b) * RRAM_TRAIN_MAX_DIM + (uint64_t)j; }
static inline uint64_t row_train(int32_t b, int32_t i) { return (2 * (uint64_t)b + 1) * RRAM_TRAIN_MAX_DIM + (uint64_t)i; }

static int tile_ok(const rram_train_tile *t) {
    return t && t->rows > 0 && t->cols > 0 && t->rows <= RRAM_TRAIN_MAX_DIM && t->cols <= RRAM_TRAIN_MAX_DIM &&
           t->w && t->w_max && t->w_min && t->alpha_up && t->alpha_down && t->gamma_up && t->gamma_down &&
           t->dev && t->c2c_sigma >= 0.0;
}

int rram_train_pack(const rram_train_tile *t, float *dev_out) {
    if (!t || !dev_out || t->rows <= 0 || t->cols <= 0 || !t->w_max || !t->w_min || !t->alpha_up ||
        !t->alpha_down || !t->gamma_up || !t->gamma_down)
        return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (int64_t k = 0; k < total; ++k) {
        float *p = dev_out + RRAM_TRAIN_DEV_STRIDE * k;
        p[RRAM_TRAIN_DEV_W_MAX] = (float)t->w_max[k];
        p[RRAM_TRAIN_DEV_W_MIN] = (float)t->w_min[k];
        p[RRAM_TRAIN_DEV_ALPHA_UP] = (float)t->alpha_up[k];
        p[RRAM_TRAIN_DEV_ALPHA_DOWN] = (float)t->alpha_down[k];
        p[RRAM_TRAIN_DEV_GM1_UP] = (float)(t->gamma_up[k] - 1.0);
        p[RRAM_TRAIN_DEV_GM1_DOWN] = (float)(t->gamma_down[k] - 1.0);
        p[RRAM_TRAIN_DEV_SPAN] = (float)t->w_max[k] - (float)t->w_min[k];
        p[7] = 0.0f;
        if (!(p[RRAM_TRAIN_DEV_SPAN] > 0.0f)) return RRAM_E_ARG;  /* bounds equal in float32 */
    }
    return RRAM_OK;
}

#define WORDS (RRAM_TRAIN_MAX_DIM / 64)
#define GROUP_BYTES (8 * 1024 * 1024)  /* scratch of one group of samples: a whole usual batch */

/* What the update keeps of each sample of a group: firing probability factor of the rows, the key
 * of its cycle-to-cycle draws, whether any column fired. */
typedef struct {
    double cd;
    uint64_t skey;
    int32_t active;
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
    const uint64_t ukey = rram_draw(t->key, t->counter++);
    const update_keys_t uk = {ukey, rram_mix64(ukey ^ TIE_SALT), rram_mix64(ukey ^ NOISE_SALT)};
    uint64_t u[WORDS], queued[WORDS];
    const double k_prod = cfg->lr / ((double)bl * cfg->dw_min);  /* cx * cd */
    int64_t pulses = 0;
    for (int32_t b0 = 0; b0 < batch; b0 += group) {
        const int32_t ng = batch - b0 < group ? batch - b0 : group;
        /* Column trains of the group's samples. */
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
                uint64_t bits = train_of(&uk, col_train(b0 + g, j), fabs(xb[j]) * cx, bl);
                xg[j] = bits;
                if (!bits) continue;
                sm->active = 1;
                uint64_t bit = 1ULL << (j & 63);
                if (xb[j] < 0.0) ng_[j >> 6] |= bit;
                for (uint64_t m = bits; m; m &= m - 1) sg[(size_t)__builtin_ctzll(m) * nw + (j >> 6)] |= bit;
            }
            /* Key of this sample's cycle-to-cycle draws: pulse p on device k draws at counter
             * 64 k + p, whatever the order in which the pulses are found. */
            sm->skey = rram_draw(uk.noise, (uint64_t)(b0 + g));
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
                const uint64_t di = train_of(&uk, row_train(b0 + g, i), fabs(dv) * sm->cd, bl);
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
        /* The kernel's own step (float32, packed parameters), so expectations match what pulses apply. */
        const float *p = t->dev + RRAM_TRAIN_DEV_STRIDE * k;
        const float w = (float)t->w[k], span = p[RRAM_TRAIN_DEV_SPAN];
        const float yu = (p[RRAM_TRAIN_DEV_W_MAX] - w) / span, yd = -(p[RRAM_TRAIN_DEV_W_MIN] - w) / span;
        if (up_out) up_out[k] = (double)(step_y(yu, p[RRAM_TRAIN_DEV_GM1_UP], p[RRAM_TRAIN_DEV_ALPHA_UP]) * span);
        if (down_out) down_out[k] = (double)(step_y(yd, p[RRAM_TRAIN_DEV_GM1_DOWN], p[RRAM_TRAIN_DEV_ALPHA_DOWN]) * span);
    }
    return RRAM_OK;
}
