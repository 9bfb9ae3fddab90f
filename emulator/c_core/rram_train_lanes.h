/*
 * rram_train_lanes.h - the device step on float32 lanes (pulse_lanes_body, steps_body), for rram_train.c only.
 *
 * Included once per build of the step: rram_train.c defines CHUNK, PAD and lanes_t, and before each
 * inclusion VW (lanes per generic vector), LANE_SUFFIX (appended to every type and function below:
 * vf_v4, pulse_lanes_body_v4, ...) and LANE_SOFT_FMA (1: the fused multiply-adds by soft_fmaf, for
 * targets without the instruction); the inclusion undefines them. One copy of the math, each build at
 * the width fastest for it.
 */
#ifndef RRAM_TRAIN_LANES_ONCE
#define RRAM_TRAIN_LANES_ONCE
#define LANE_CAT_(a, b) a##_##b
#define LANE_CAT(a, b) LANE_CAT_(a, b)  /* a_b, with b expanded */

/* fmaf(a, b, c), correctly rounded, from double operations, for x86-64 without FMA: there glibc computes
 * fmaf in software, 97 % of an update (sparse benchmark 1.4 s against 29 ms with this). a b is exact in
 * double (24 + 24 bits); s = a b + c rounded to double is moved one ulp towards the rounding error
 * (Knuth's two-sum, exact) where it is inexact and its last bit even: a b + c rounded to odd in 53 bits,
 * which rounded to float is a b + c rounded once (Boldo and Melquiond, 2008: odd rounding with two bits
 * to spare). Inf and NaN: err is NaN, no move. Checked against the FMA instruction on 2e8 operands
 * (random bits, near-cancellations, halfway sums, subnormal results; NaN bits included): identical, where
 * (float)(a b + c) differed 15,290 times. */
static inline __attribute__((always_inline)) float soft_fmaf(float a, float b, float c) {
    const double p = (double)a * (double)b, cd = c, s = p + cd, bb = s - p;
    const double err = (p - (s - bb)) + (cd - bb);  /* s + err = p + c */
    int64_t si, ei;
    memcpy(&si, &s, sizeof si);
    memcpy(&ei, &err, sizeof ei);
    const int64_t dir = ((si ^ ei) >> 63) | 1;  /* +1 ulp where err has s's sign, -1 otherwise */
    si += err != err || err == 0.0 ? 0 : dir & -(~si & 1);  /* a select, not a bool: GCC vectorizes it */
    double r;
    memcpy(&r, &si, sizeof r);
    return (float)r;
}
#endif

#if !defined(VW) || VW % 8 != 0 || VW > 32 || VW > PAD || CHUNK % VW != 0 \
    || !defined(LANE_SUFFIX) || !defined(LANE_SOFT_FMA) || !defined(LANE_MOVEMASK) || !defined(LANE_TARGET)
#error "rram_train_lanes.h: VW (a multiple of 8 up to 32, at most PAD, dividing CHUNK), LANE_SUFFIX, LANE_SOFT_FMA"
#endif
/* Every function below is inlined into its build's entry point and compiled for that build's target
 * (LANE_TARGET), so that a build may use its own instructions. */
#define LANE_FN static inline __attribute__((always_inline)) LANE_TARGET
_Static_assert(sizeof(((lanes_t *)0)->tb) / sizeof(uint32_t) >= CHUNK / VW, "lanes_t.tb: one word per vector");

#define vf LANE_CAT(vf, LANE_SUFFIX)
#define vi LANE_CAT(vi, LANE_SUFFIX)
#define vu LANE_CAT(vu, LANE_SUFFIX)
#define vu64 LANE_CAT(vu64, LANE_SUFFIX)
#define vf_mem LANE_CAT(vf_mem, LANE_SUFFIX)
#define vu64_mem LANE_CAT(vu64_mem, LANE_SUFFIX)
#define vsplat LANE_CAT(vsplat, LANE_SUFFIX)
#define vsel LANE_CAT(vsel, LANE_SUFFIX)
#define vfma LANE_CAT(vfma, LANE_SUFFIX)
#define vmax LANE_CAT(vmax, LANE_SUFFIX)
#define vmin_pos LANE_CAT(vmin_pos, LANE_SUFFIX)
#define vmax_pos LANE_CAT(vmax_pos, LANE_SUFFIX)
#define log2_parts LANE_CAT(log2_parts, LANE_SUFFIX)
#define exp2m1_reduced LANE_CAT(exp2m1_reduced, LANE_SUFFIX)
#define two_to_k LANE_CAT(two_to_k, LANE_SUFFIX)
#define pow_parts LANE_CAT(pow_parts, LANE_SUFFIX)
#define one_minus_exp2_neg LANE_CAT(one_minus_exp2_neg, LANE_SUFFIX)
#define v_sqrt LANE_CAT(v_sqrt, LANE_SUFFIX)
#define unit_lanes LANE_CAT(unit_lanes, LANE_SUFFIX)
#define live_y LANE_CAT(live_y, LANE_SUFFIX)
#define step_z_of LANE_CAT(step_z_of, LANE_SUFFIX)
#define live_m LANE_CAT(live_m, LANE_SUFFIX)
#define step_z LANE_CAT(step_z, LANE_SUFFIX)
#define step_v LANE_CAT(step_v, LANE_SUFFIX)
#define step_of_v LANE_CAT(step_of_v, LANE_SUFFIX)
#define step_y LANE_CAT(step_y, LANE_SUFFIX)
#define v_mix64_top LANE_CAT(v_mix64_top, LANE_SUFFIX)
#define uniform_of LANE_CAT(uniform_of, LANE_SUFFIX)
#define is_central LANE_CAT(is_central, LANE_SUFFIX)
#define normal_central LANE_CAT(normal_central, LANE_SUFFIX)
#define normal_tail LANE_CAT(normal_tail, LANE_SUFFIX)
#define mask_bits LANE_CAT(mask_bits, LANE_SUFFIX)
#define ld LANE_CAT(ld, LANE_SUFFIX)
#define st LANE_CAT(st, LANE_SUFFIX)
#define ld64 LANE_CAT(ld64, LANE_SUFFIX)
#define st64 LANE_CAT(st64, LANE_SUFFIX)
#define lanes_below LANE_CAT(lanes_below, LANE_SUFFIX)
#define draw_lanes LANE_CAT(draw_lanes, LANE_SUFFIX)
#define tail_lanes LANE_CAT(tail_lanes, LANE_SUFFIX)
#define zv_passes LANE_CAT(zv_passes, LANE_SUFFIX)
#define pulse_lanes_body LANE_CAT(pulse_lanes_body, LANE_SUFFIX)
#define steps_body LANE_CAT(steps_body, LANE_SUFFIX)
#define unpack_lanes_body LANE_CAT(unpack_lanes_body, LANE_SUFFIX)

/* ------------------------------------------------------------------ float32 lanes (GCC vector extension)
 *
 * The device step runs on generic vectors of VW float32 lanes. Every operation is an elementwise IEEE
 * operation: the basic ones (no contraction under -std=c11) and explicit fused multiply-adds (one
 * correctly rounded IEEE operation, fmaf), so every build and every VW give the same bits: the width only
 * groups the lanes. */
/* A loop over the lanes. Not unrolled before the vectorizer sees it: GCC fully unrolls loops of up to 16
 * iterations early, and the straight-line lanes then come out scalar (4x slower at VW 16, 10 % at 8); as
 * a loop each becomes one or two instructions per register. */
#define FOR_LANES(l) _Pragma("GCC unroll 1") for (int l = 0; l < VW; ++l)
typedef float vf __attribute__((vector_size(4 * VW)));
typedef int32_t vi __attribute__((vector_size(4 * VW)));
typedef uint32_t vu __attribute__((vector_size(4 * VW)));
typedef uint64_t vu64 __attribute__((vector_size(8 * VW)));

LANE_FN vf vsplat(float c) {
    vf r;
    FOR_LANES(l) r[l] = c;  /* one broadcast ((vf){0} + c is built lane by lane) */
    return r;
}
LANE_FN vf vsel(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }  /* mask ? a : b */
/* Lane loops for what the generic operators lack or lower badly (GCC lowers a comparison of vectors
 * wider than a register lane by lane): the vectorizer turns each into one or two instructions per
 * register (vfmadd; vcmpps and a blend; vpminsd); without FMA, soft_fmaf. */
LANE_FN vf vfma(vf a, vf b, vf c) {  /* a b + c, rounded once */
    vf r;
#if LANE_SOFT_FMA
    FOR_LANES(l) r[l] = soft_fmaf(a[l], b[l], c[l]);
#else
    FOR_LANES(l) r[l] = __builtin_fmaf(a[l], b[l], c[l]);
#endif
    return r;
}
LANE_FN vf vmax(vf a, float c) {
    vf r;
    FOR_LANES(l) r[l] = a[l] > c ? a[l] : c;
    return r;
}
/* min(a, c) and max(a, c) for c >= 0 as one integer operation on the bits: floats >= 0 order like their
 * bits, negative ones (sign bit set: negative integers) lie below them. */
LANE_FN vf vmin_pos(vf a, float c) {
    const vi ai = (vi)a;
    int32_t ci;
    memcpy(&ci, &c, sizeof ci);
    vi r;
    FOR_LANES(l) r[l] = ai[l] < ci ? ai[l] : ci;
    return (vf)r;
}
LANE_FN vf vmax_pos(vf a, float c) {
    const vi ai = (vi)a;
    int32_t ci;
    memcpy(&ci, &c, sizeof ci);
    vi r;
    FOR_LANES(l) r[l] = ai[l] > ci ? ai[l] : ci;
    return (vf)r;
}

#define SHIFT23 12582912.0f     /* 1.5 * 2^23: adding it rounds to an integer in the low bits */
#define INV_LN2 1.44269504f     /* 1 / ln 2 */
#define LN2 0.693147181f

/* log2 x = e + f P(f) for normal x > 0: x = 2^e (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) (f exact), P of
 * degree 8 fitted here for the relative error of log2(1 + f) / f on that interval (weighted least squares,
 * Lawson iteration; < 9e-8 evaluated in float32). Returns f P(f) (full relative precision for small f)
 * and e in *e. */
LANE_FN vf log2_parts(vf x, vf *e) {
    const vi ix = (vi)x - 0x3F3504F3;  /* the bits of sqrt(1/2): ix >> 23 is the exponent of x / sqrt(1/2) */
    *e = __builtin_convertvector(ix >> 23, vf);
    const vf f = (vf)((ix & 0x007FFFFF) + 0x3F3504F3) - 1.0f;
    vf p = vfma(f, vsplat(0.1259196400642395f), vsplat(-0.2068820595741272f));
    p = vfma(p, f, vsplat(0.2154901623725891f));
    p = vfma(p, f, vsplat(-0.23899807035923004f));
    p = vfma(p, f, vsplat(0.28795093297958374f));
    p = vfma(p, f, vsplat(-0.3607015907764435f));
    p = vfma(p, f, vsplat(0.4809090495109558f));
    p = vfma(p, f, vsplat(-0.7213473916053772f));
    p = vfma(p, f, vsplat(1.4426950216293335f));
    return f * p;
}

/* 2^r - 1 = r E(r) for |r| <= 1/2, E of degree 5 fitted like P above (relative error < 8e-8 in float32). */
LANE_FN vf exp2m1_reduced(vf r) {
    vf p = vfma(r, vsplat(0.00015398397226817906f), vsplat(0.0013387766666710377f));
    p = vfma(p, r, vsplat(0.009618247859179974f));
    p = vfma(p, r, vsplat(0.055503666400909424f));
    p = vfma(p, r, vsplat(0.24022649228572845f));
    p = vfma(p, r, vsplat(0.6931471824645996f));
    return r * p;
}

/* 2^k from t = x + SHIFT23 or SHIFT23 - x (k = round(+-x) in t's low bits; SHIFT23's own bits shift out). */
LANE_FN vf two_to_k(vf t) { return (vf)(((vu)t << 23) + (127u << 23)); }

/* y^g = 2^(g (e + l)) from log2 y = e + l (log2_parts): g e - k and g l are summed after the reduction, so
 * the result keeps float32 precision for large |g log2 y| (g log2 y itself would lose its low bits). k is
 * clamped to [-125, 126] (t > 0 whenever that matters, so on its bits), a clamped lane gives 2^k: normal
 * results, the ends of the range only for extreme lanes. */
LANE_FN vf pow_parts(vf e, vf l, vf g) {
    const vf gl = g * l;
    const vf t = vfma(g, e, gl) + SHIFT23;
    const vf tc = vmax_pos(vmin_pos(t, SHIFT23 + 126.0f), SHIFT23 - 125.0f);
    const vf r0 = vfma(g, e, -(tc - SHIFT23)) + gl;  /* |r0| <= 1/2 unless clamped */
    vf r;
    FOR_LANES(i) r[i] = t[i] == tc[i] ? r0[i] : 0.0f;
    const vf tk = two_to_k(tc);
    return vfma(tk, exp2m1_reduced(r), tk);
}

/* 1 - 2^-v for v >= 0 (clamped to 30: beyond, 1 in float32), without cancellation for small v:
 * 1 - 2^k (1 + r E(r)) = (1 - 2^k) - 2^k r E(r), k = round(-v), r = -v - k exact. */
LANE_FN vf one_minus_exp2_neg(vf v) {
    const vf vc = vmin_pos(v, 30.0f);
    const vf t = SHIFT23 - vc;
    const vf tk = two_to_k(t);
    return vfma(-tk, exp2m1_reduced((SHIFT23 - t) - vc), 1.0f - tk);
}

/* sqrt x for x in [1e-3, 1e3] (the tail's -2 ln p lies in [7.4, 34]) to ~1e-7: 1/sqrt from the exponent
 * halved, three Newton steps, times x. Only basic operations, so every build gives the same bits. */
LANE_FN vf v_sqrt(vf x) {
    vf r = (vf)(0x5F3759DF - ((vi)x >> 1));
    for (int i = 0; i < 3; ++i) r = r * (1.5f - 0.5f * x * r * r);
    return x * r;
}

/* ------------------------------------------------------------------ device step */

#define Y_TINY 1e-30f  /* distances to a bound below this are at the bound: no further step that way */

/* Decrease of the normalized distance y to the bound over one pulse of strength m >= 0: y - y',
 * with y' the integral of dy/dm = -y^gamma (the law of rram.c's soft_bound, so fitted devices
 * behave as measured): y' = y (1 + g m y^g)^(-1 / g) with g = gamma - 1 (g1 here), y e^-m for g = 0,
 * 0 once the base reaches 0 (the bound in one pulse). Computed as y (1 - 2^-v), v = log2(1 + z) / g,
 * z = g m y^g, without cancellation (a weak pulse's step m y^gamma keeps full float32 precision).
 * In parts (step_y), so that the pulse loop can run each over all lanes. */
LANE_FN vi unit_lanes(vf g1) {  /* g ~ 0 (gamma = 1): y e^-m */
    vi r;
    FOR_LANES(l) r[l] = __builtin_fabsf(g1[l]) < 1e-7f ? -1 : 0;
    return r;
}

LANE_FN vf live_y(vf y) {
    vf r;
    FOR_LANES(l) r[l] = y[l] > Y_TINY ? y[l] : 1.0f;  /* at the bound: y = 1 with m = 0, no step */
    return r;
}

/* z = g m y^g, clamped to [-2, 1e30] (z >= -2 keeps 1 + z exact below 0, only for gamma < 1, where step_v
 * clamps the base to the smallest normal: v >= 126 / |g|, 1 - 2^-v = 1, the bound in one pulse); m itself
 * for gamma = 1 (0 at the bound). */
LANE_FN vf step_z_of(vf e, vf l, vf g1, vf mm, const int units) {
    /* log2 y = e + l, mm: m live; units = 0: no lane has gamma = 1 (its selects would keep g1 and z) */
    if (!units) return vmax(vmin_pos((g1 * mm) * pow_parts(e, l, g1), 1e30f), -2.0f);
    const vi unit = unit_lanes(g1);
    vf gs;
    FOR_LANES(i) gs[i] = unit[i] ? 1.0f : g1[i];
    return vsel(unit, mm, vmax(vmin_pos((gs * mm) * pow_parts(e, l, gs), 1e30f), -2.0f));
}

LANE_FN vf live_m(vf y, vf m) {
    vf r;
    FOR_LANES(l) r[l] = y[l] > Y_TINY ? m[l] : 0.0f;
    return r;
}

LANE_FN vf step_z(vf y, vf g1, vf m) {
    vf e, l = log2_parts(live_y(y), &e);
    return step_z_of(e, l, g1, live_m(y, m), 1);
}

/* v = log2(1 + z) / g (m / ln 2 for gamma = 1): the rounding c of b = 1 + z corrected by
 * c / (b ln 2) ~ c (1 - z) / ln 2 (error c z^2 / (1 + z), below float32 resolution; for z >= 1 the
 * correction itself is below it). */
LANE_FN vf step_v(vf g1, vf z, const int units) {  /* units: as in step_z_of */
    const vf b = 1.0f + z;
    vf eb, lb = log2_parts(vmax_pos(b, 0x1p-126f), &eb);
    const vf l1p = vfma(z - (b - 1.0f), vmax_pos(vfma(z, vsplat(-INV_LN2), vsplat(INV_LN2)), 0.0f), eb + lb);
    if (!units) return l1p / g1;
    const vi unit = unit_lanes(g1);
    vf gs;
    FOR_LANES(l) gs[l] = unit[l] ? 1.0f : g1[l];
    return vsel(unit, z * INV_LN2, l1p / gs);
}

/* The step y (1 - 2^-v) from live_y(y) and v. */
LANE_FN vf step_of_v(vf yy, vf v) { return yy * one_minus_exp2_neg(v); }

LANE_FN vf step_y(vf y, vf g1, vf m) {
    return step_of_v(live_y(y), step_v(g1, step_z(y, g1, m), 1));
}

/* The counter-based draw of rram_rng.h on lanes: rram_draw(key, counter) is the splitmix64 finalizer
 * of key + (counter + 1) * golden; a lane carries that sum (`seq`), so its next draw adds golden.
 * Only the top 23 bits are used (the uniform below): the finalizer's last step z ^ (z >> 31) leaves
 * them as they are, so it is left out. */
LANE_FN vu64 v_mix64_top(vu64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    return (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
}

/* Standard normal from a 23-bit uniform u = (k + 0.5) 2^-23 (so 1 - u and u - 0.5 are exact):
 * Acklam's rational approximation (relative error ~1e-9, here float32). The central region (95 % of
 * draws) and the tails are separate functions: the tails, with their logarithm and square root, are
 * computed only for the lanes that need them, gathered into vectors of their own (same operations
 * per lane, so the same bits as computing both regions everywhere and selecting). */
#define P_LOW 0.02425f
LANE_FN vf uniform_of(vu64 r) {
    const vf k = __builtin_convertvector(__builtin_convertvector(v_mix64_top(r) >> 41, vi), vf);
    return vfma(k, vsplat(0x1p-23f), vsplat(0x1p-24f));  /* exact, as (k + 0.5) 2^-23 */
}

LANE_FN vi is_central(vf u) {
    vi c;
    FOR_LANES(l) c[l] = -((u[l] > P_LOW) & (u[l] < 1.0f - P_LOW));  /* & not &&: no branch */
    return c;
}

LANE_FN vf normal_central(vf u) {
    const vf q = u - 0.5f, rr = q * q;
    vf nc = vfma(rr, vsplat(-3.969683028665376e+01f), vsplat(2.209460984245205e+02f));
    nc = vfma(nc, rr, vsplat(-2.759285104469687e+02f));
    nc = vfma(nc, rr, vsplat(1.383577518672690e+02f));
    nc = vfma(nc, rr, vsplat(-3.066479806614716e+01f));
    nc = vfma(nc, rr, vsplat(2.506628277459239e+00f));
    vf dc = vfma(rr, vsplat(-5.447609879822406e+01f), vsplat(1.615858368580409e+02f));
    dc = vfma(dc, rr, vsplat(-1.556989798598866e+02f));
    dc = vfma(dc, rr, vsplat(6.680131188771972e+01f));
    dc = vfma(dc, rr, vsplat(-1.328068155288572e+01f));
    dc = vfma(dc, rr, vsplat(1.0f));
    return nc * q / dc;
}

LANE_FN vf normal_tail(vf u) {
    vi lower;
    vf p;
    FOR_LANES(l) {
        lower[l] = u[l] < 0.5f ? -1 : 0;
        p[l] = u[l] < 0.5f ? u[l] : 1.0f - u[l];
    }
    vf e, lp = log2_parts(p, &e);
    const vf qt = v_sqrt((e + lp) * (-2.0f * LN2));  /* sqrt(-2 ln p) */
    vf nt = vfma(qt, vsplat(-7.784894002430293e-03f), vsplat(-3.223964580411365e-01f));
    nt = vfma(nt, qt, vsplat(-2.400758277161838e+00f));
    nt = vfma(nt, qt, vsplat(-2.549732539343734e+00f));
    nt = vfma(nt, qt, vsplat(4.374664141464968e+00f));
    nt = vfma(nt, qt, vsplat(2.938163982698783e+00f));
    vf dt = vfma(qt, vsplat(7.784695709041462e-03f), vsplat(3.224671290700398e-01f));
    dt = vfma(dt, qt, vsplat(2.445134137142996e+00f));
    dt = vfma(dt, qt, vsplat(3.754408661907416e+00f));
    dt = vfma(dt, qt, vsplat(1.0f));
    return vsel(lower, nt, -nt) / dt;
}

/* Bit l set where lane l of the mask is set: one move of the lanes' sign bits where the build has it
 * (LANE_MOVEMASK: the register's width in bits), else the lanes narrowed to bytes (0 or 1), each eight
 * gathered into the top byte of one multiply (byte l -> bit 56 + l, no carries). */
LANE_FN uint32_t mask_bits(vi m) {
#if LANE_MOVEMASK == 512 && VW == 16
    return (uint32_t)_mm512_movepi32_mask((__m512i)m);
#elif LANE_MOVEMASK == 256 && VW == 8
    return (uint32_t)_mm256_movemask_ps((__m256)m);
#else
    typedef uint8_t vb __attribute__((vector_size(VW)));
    const vb b = __builtin_convertvector(m, vb) & 1;
    uint32_t r = 0;
    for (int i = 0; i < VW / 8; ++i) {
        uint64_t w;
        memcpy(&w, (const char *)&b + 8 * i, sizeof w);
        r |= (uint32_t)((w * 0x0102040810204080ULL) >> 56) << (8 * i);
    }
    return r;
#endif
}

/* A vector of lanes loaded from or stored to a lanes_t array (may alias its floats). */
typedef vf vf_mem __attribute__((may_alias, aligned(4)));
typedef vu64 vu64_mem __attribute__((may_alias, aligned(8)));
LANE_FN vf ld(const float *p) { return *(const vf_mem *)p; }
LANE_FN void st(float *p, vf v) { *(vf_mem *)p = v; }
LANE_FN vu64 ld64(const uint64_t *p) { return *(const vu64_mem *)p; }
LANE_FN void st64(uint64_t *p, vu64 v) { *(vu64_mem *)p = v; }

/* Lanes e0 + l < m as a mask. */
LANE_FN vi lanes_below(int32_t e0, int32_t m) {
    vi r;
    FOR_LANES(l) r[l] = e0 + l < m ? -1 : 0;
    return r;
}

/* The cycle-to-cycle draw of the lanes [e0, e0 + VW) (their counters advanced): the uniform kept in un,
 * the lanes below m whose draw is in a tail listed in te at *nt (compressed: the AVX-512 build) or kept as
 * a bitmask in tb for tail_lanes to list (the others). The same list, in lane order, either way. */
#define TAIL_COMPRESS (LANE_MOVEMASK == 512 && VW == 16)
LANE_FN void draw_lanes(lanes_t *restrict L, int32_t s0, int32_t e0, int32_t m, int32_t *nt) {
    const vu64 seq = ld64(L->seq + e0);
    const vf u = uniform_of(seq);
    st64(L->seq + e0, seq + RRAM_GOLDEN);  /* the device's next pulse draws at the next counter */
    st(L->un + e0, u);
#if TAIL_COMPRESS
    const __mmask16 tm = (__mmask16)mask_bits(lanes_below(e0, m) & ~is_central(u));
    const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(e0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    _mm512_storeu_si512(L->te + *nt, _mm512_maskz_compress_epi32(tm, idx));
    *nt += __builtin_popcount(tm);
    (void)s0;
#else
    (void)nt;
    L->tb[(e0 - s0) / VW] = mask_bits(lanes_below(e0, m) & ~is_central(u));
#endif
}

/* The tail lanes of the draws listed in te (nt of them listed by draw_lanes, the rest from tb), their number
 * returned, and their noise factors 1 + c2c xi in xt, VW at a time (te padded to whole vectors). Listing
 * from tb: ~0.8 tail lanes per vector, four slots written
 * unconditionally (past the count: overwritten by the next vector's), a loop for the rare fifth; no
 * branch on the count to mispredict. Padding: the lanes past CHUNK, past every pass (mp <= CHUNK) and
 * never stored, with u = 1/2 and dw = 0, so that all lanes are stored back without a branch on the count
 * (distinct ones: no chain through memory). */
LANE_FN int32_t tail_lanes(lanes_t *restrict L, int32_t s0, int32_t mp, float c2c, int32_t nt) {
    for (int32_t e0 = s0; e0 < mp && !TAIL_COMPRESS; e0 += VW) {
        uint32_t bits = L->tb[(e0 - s0) / VW];
        const int32_t nb = __builtin_popcount(bits);
        for (int32_t q = 0; q < 4; ++q) {
            L->te[nt + q] = e0 + __builtin_ctz(bits | 0x80000000u);
            bits &= bits - 1;
        }
        for (int32_t q = 4; q < nb; ++q) {
            L->te[nt + q] = e0 + __builtin_ctz(bits);
            bits &= bits - 1;
        }
        nt += nb;
    }
    for (int32_t i = nt; i < (nt + VW - 1) / VW * VW; ++i) L->te[i] = CHUNK + i % VW;
    st(L->un + CHUNK, vsplat(0.5f));
    st(L->dw + CHUNK, vsplat(0.0f));
    for (int32_t t0 = 0; t0 < nt; t0 += VW) {
        const int32_t *te = L->te + t0;
        vf u;
        FOR_LANES(l) u[l] = L->un[te[l]];
        st(L->xt + t0, vfma(normal_tail(u), vsplat(c2c), vsplat(1.0f)));
    }
    return nt;
}

/* The z and the v pass of pulse_lanes (units: as in step_z_of). */
LANE_FN void zv_passes(lanes_t *restrict L, int32_t s0, int32_t mp, const int units) {
    for (int32_t e0 = s0; e0 < mp; e0 += VW) {
        st(L->dw + e0, step_z_of(ld(L->le + e0), ld(L->ll + e0), ld(L->g1 + e0), ld(L->dw + e0), units));
    }
    for (int32_t e0 = s0; e0 < mp; e0 += VW) {
        st(L->dw + e0, step_v(ld(L->g1 + e0), ld(L->dw + e0), units));
    }
}

/* One pulse on every lane [s, m). The vectors cover [s rounded down, m rounded up) to whole vectors:
 * lanes below s are stale (never written back to the tile), lanes past m hold finished devices or
 * harmless padding; they are computed and not stored. The step goes in passes over
 * all lanes, kept in the scratch lanes between passes: log2 y (live y in yy, live m in dw) with the
 * noise draw; the tail lanes' noise; z; v; the step with its noise and the store; the tail lanes' store.
 * A pass is a short loop whose iterations the out-of-order core overlaps. The chains are the
 * polynomials' (Horner: each operation waits on the one before), so what overlaps is bounded by how many
 * of a pass's iterations fit in the scheduler: passes of one polynomial each ran ~20 % faster than
 * passes of two; the draw, independent of the step, shares the first pass, and the tails' noise (a
 * logarithm, a square root and a division) overlaps the z and v passes. */
LANE_FN void pulse_lanes_body(lanes_t *restrict L, int32_t s, int32_t m, float c2c) {
    const int32_t s0 = s / VW * VW, mp = s0 + (m - s0 + VW - 1) / VW * VW;
    const int noise = c2c > 0.0f;
    vi any_unit = {0};
    int32_t nt0 = 0;
    for (int32_t e0 = s0; e0 < mp; e0 += VW) {
        any_unit |= unit_lanes(ld(L->g1 + e0));
        const vf y = (ld(L->ref + e0) - ld(L->w + e0)) * ld(L->sis + e0), yy = live_y(y);
        vf e, l = log2_parts(yy, &e);
        st(L->dw + e0, live_m(y, ld(L->alpha + e0)));
        st(L->yy + e0, yy);
        st(L->le + e0, e);
        st(L->ll + e0, l);
        if (noise) draw_lanes(L, s0, e0, m, &nt0);
    }
    const int32_t nt = noise ? tail_lanes(L, s0, mp, c2c, nt0) : 0;
    int32_t units = 0;  /* gamma = 1 on some lane: the z and v passes with their selects */
    FOR_LANES(l) units |= any_unit[l];
    if (units) {
        zv_passes(L, s0, mp, 1);
    } else {
        zv_passes(L, s0, mp, 0);
    }
    for (int32_t e0 = s0; e0 < mp; e0 += VW) {
        const vf w = ld(L->w + e0), dw = step_of_v(ld(L->yy + e0), ld(L->dw + e0)) * ld(L->ssp + e0);
        vi store = lanes_below(e0, m);
        vf wn = w + dw;
        if (noise) {  /* the central draws' noise here, the tails' below */
            st(L->dw + e0, dw);
            const vf u = ld(L->un + e0);
            store &= is_central(u);
            wn = w + dw * vfma(normal_central(u), vsplat(c2c), vsplat(1.0f));
        }
        st(L->w + e0, vsel(store, wn, w));
    }
    for (int32_t t0 = 0; t0 < nt; t0 += VW) {  /* the tail lanes' noise-free step gathered, times their noise */
        const int32_t *te = L->te + t0;
        vf dw;
        FOR_LANES(l) dw[l] = L->dw[te[l]];
        dw = dw * ld(L->xt + t0);
        FOR_LANES(l) L->w[te[l]] += dw[l];
    }
}

/* The lanes [s, m) (whole vectors from s rounded down) from their devices' packed records (dev, the tile's, read
 * at each lane's device k: stale lanes below s hold earlier devices of the tile) and directions: the half of the
 * record for the lane's direction (its bound, alpha, gamma - 1 and span), four lanes' halves in each 128-bit
 * part of four registers, transposed within the parts (two stages of one-instruction shuffles in every
 * build), then sis = sgn / span (the same division as the record's packing used to store) and ssp = sgn span
 * (sgn -1 down: the sign bit flipped, exact). Bit operations and one IEEE division only, so every build gives
 * the same bits. */
LANE_FN void unpack_lanes_body(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) {
    /* UW lanes at a time: 16 (four parts per register) where the build's vectors are that wide, else 8. */
#if VW == 16
#define UW 16
#else
#define UW 8
#endif
    typedef uint32_t v4u __attribute__((vector_size(16)));
    typedef uint32_t vU __attribute__((vector_size(4 * UW)));
    typedef float vUf __attribute__((vector_size(4 * UW)));
    typedef v4u v4u_mem __attribute__((may_alias, aligned(4)));
    typedef vU vU_mem __attribute__((may_alias, aligned(4)));
    /* per 128-bit part c (lanes 4c .. 4c + 3): unpack low / high of 32-bit and of 64-bit pairs */
#if UW == 16
#define UPART(a, b, c, d) a, b, c, d, 4 + a, 4 + b, 4 + c, 4 + d, 8 + a, 8 + b, 8 + c, 8 + d, 12 + a, 12 + b, 12 + c, 12 + d
#else
#define UPART(a, b, c, d) a, b, c, d, 4 + a, 4 + b, 4 + c, 4 + d
#endif
    const vU lo_ps = {UPART(0, UW, 1, UW + 1)}, hi_ps = {UPART(2, UW + 2, 3, UW + 3)};
    const vU lo_pd = {UPART(0, 1, UW, UW + 1)}, hi_pd = {UPART(2, 3, UW + 2, UW + 3)};
#define HALF(e) (*(const v4u_mem *)(const void *)(dev + RRAM_TRAIN_DEV_STRIDE * L->k[e] + RRAM_TRAIN_DEV_HALF * L->dn[e]))
    for (int32_t e0 = s / VW * VW; e0 < m; e0 += UW) {
        vU z[4];
        for (int q = 0; q < 4; ++q) {  /* part c of z[q]: lane e0 + 4 c + q */
#if UW == 16 && LANE_MOVEMASK == 512
            /* inserts from memory: a load and a blend each, no shuffle */
            __m512i r = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)&HALF(e0 + q)));
            r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(const void *)&HALF(e0 + 4 + q)), 1);
            r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(const void *)&HALF(e0 + 8 + q)), 2);
            r = _mm512_inserti32x4(r, _mm_loadu_si128((const __m128i *)(const void *)&HALF(e0 + 12 + q)), 3);
            z[q] = (vU)r;
#elif UW == 16
            const v4u a = HALF(e0 + q), b = HALF(e0 + 4 + q), c = HALF(e0 + 8 + q), d = HALF(e0 + 12 + q);
            typedef uint32_t v8u __attribute__((vector_size(32)));
            const v8u ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7), cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7);
            z[q] = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
#else
            z[q] = __builtin_shufflevector(HALF(e0 + q), HALF(e0 + 4 + q), 0, 1, 2, 3, 4, 5, 6, 7);
#endif
        }
        const vU t0 = __builtin_shuffle(z[0], z[1], lo_ps), t1 = __builtin_shuffle(z[0], z[1], hi_ps);
        const vU t2 = __builtin_shuffle(z[2], z[3], lo_ps), t3 = __builtin_shuffle(z[2], z[3], hi_ps);
        const vU neg = *(const vU_mem *)(const void *)(L->dn + e0) << 31;
        const vU span = __builtin_shuffle(t1, t3, hi_pd);
        *(vU_mem *)(void *)(L->ref + e0) = __builtin_shuffle(t0, t2, lo_pd);
        *(vU_mem *)(void *)(L->alpha + e0) = __builtin_shuffle(t0, t2, hi_pd);
        *(vU_mem *)(void *)(L->g1 + e0) = __builtin_shuffle(t1, t3, lo_pd);
        *(vU_mem *)(void *)(L->ssp + e0) = span ^ neg;
        *(vU_mem *)(void *)(L->sis + e0) = (vU)(1.0f / (vUf)span) ^ neg;
    }
#undef HALF
#undef UPART
#undef UW
}

/* rram_train_steps on lanes: the kernel's own step (float32, packed parameters), so expectations match
 * what pulses apply. */
LANE_FN void steps_body(const rram_train_tile *t, double *up_out, double *down_out) {
    const int64_t total = (int64_t)t->rows * t->cols;
    for (int64_t k0 = 0; k0 < total; k0 += VW) {
        vf hi = vsplat(1.0f), lo = vsplat(-1.0f), span = vsplat(2.0f), w = vsplat(0.0f);
        vf au = vsplat(0.0f), ad = vsplat(0.0f), gu = vsplat(0.0f), gd = vsplat(0.0f);
        const int n = total - k0 < VW ? (int)(total - k0) : VW;
        for (int l = 0; l < n; ++l) {
            const float *p = t->dev + RRAM_TRAIN_DEV_STRIDE * (k0 + l);
            hi[l] = p[RRAM_TRAIN_DEV_W_MAX]; lo[l] = p[RRAM_TRAIN_DEV_W_MIN]; span[l] = p[RRAM_TRAIN_DEV_SPAN];
            au[l] = p[RRAM_TRAIN_DEV_ALPHA_UP]; ad[l] = p[RRAM_TRAIN_DEV_ALPHA_DOWN];
            gu[l] = p[RRAM_TRAIN_DEV_GM1_UP]; gd[l] = p[RRAM_TRAIN_DEV_GM1_DOWN];
            w[l] = (float)t->w[k0 + l];
        }
        const vf is = 1.0f / span;  /* as the unpack: the division the record's packing used to store */
        const vf up = step_y((hi - w) * is, gu, au) * span, down = step_y((w - lo) * is, gd, ad) * span;
        for (int l = 0; l < n; ++l) {
            if (up_out) up_out[k0 + l] = (double)up[l];
            if (down_out) down_out[k0 + l] = (double)down[l];
        }
    }
}

#undef vf
#undef vi
#undef vu
#undef vu64
#undef vf_mem
#undef vu64_mem
#undef vsplat
#undef vsel
#undef vfma
#undef vmax
#undef vmin_pos
#undef vmax_pos
#undef log2_parts
#undef exp2m1_reduced
#undef two_to_k
#undef pow_parts
#undef one_minus_exp2_neg
#undef v_sqrt
#undef unit_lanes
#undef live_y
#undef step_z_of
#undef live_m
#undef step_z
#undef step_v
#undef step_of_v
#undef step_y
#undef v_mix64_top
#undef uniform_of
#undef is_central
#undef normal_central
#undef normal_tail
#undef mask_bits
#undef ld
#undef st
#undef ld64
#undef st64
#undef lanes_below
#undef draw_lanes
#undef tail_lanes
#undef zv_passes
#undef pulse_lanes_body
#undef steps_body
#undef unpack_lanes_body
#undef FOR_LANES
#undef SHIFT23
#undef INV_LN2
#undef LN2
#undef Y_TINY
#undef P_LOW
#undef TAIL_COMPRESS
#undef VW
#undef LANE_SUFFIX
#undef LANE_SOFT_FMA
#undef LANE_MOVEMASK
#undef LANE_TARGET
#undef LANE_FN
