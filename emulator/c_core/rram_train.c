/*
 * rram_train.c - pulsed updates of soft-bounds device tiles (contract in rram_train.h).
 *
 * Speed (issue 18): an update walks only the coincidences. All trains of a sample are drawn at once
 * (slot word outer, trains inner: the splitmix draws vectorize, the byte compares run as byte vector
 * compares, and the draw pass keeps where ties fell, so they are settled without drawing again). Each
 * sample's column trains are also kept as the list of its fired columns with their trains and, taken from
 * that list (compressed per slot on vectors), as one list of columns per slot. A row that fired in one
 * slot (most rows of a sparse update) takes its coincident columns from that slot's list; a row that fired in several finds them among the
 * fired columns, its train ANDed with each column's (sixteen at a time in the AVX-512 build, kept by
 * compressed stores: no branch per column), the columns with more than one coincident slot queued with
 * their counts. Rows are walked in bands whose device and weight lines fit in L2 together, sample by
 * sample within a band: one sample's pulses are on distinct devices, so they share one chunk of lanes,
 * applied at the end of the sample, and a device's pulses stay in sample order without any ordering of
 * the chunk's entries. Single pulses are written straight into the chunk's lanes (device, direction,
 * noise counter and weight; sixteen at a time in the AVX-512 build); the flush unpacks, on vectors, the
 * half of every lane's packed record for its direction and gathers the queued multiple pulses. A chunk of
 * 1024 devices is applied as structure-of-arrays lanes sorted by pulse count (the lanes still pulsing
 * form one contiguous range), by a device step in float32 on GCC generic vectors (rram_train_lanes.h,
 * compiled per build: 16 lanes, one register, in the AVX-512 build, 8 in the AVX2 (one register) and
 * baseline builds), in short passes (about one polynomial each) over the chunk's lanes so that the
 * out-of-order core overlaps the long polynomial chains. The AVX-512, AVX2 and baseline builds (chosen
 * at run time; rram_train_lane_build) execute the same IEEE operations (basic ones, no contraction under
 * -std=c11, no fast-math, and explicit fused multiply-adds, each one correctly rounded operation, from
 * double operations without FMA) and find the same coincidences, so results do not depend on the CPU.
 */
#include "rram_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rram.h"
#include "rram_rng.h"

#define TRAIN_STREAM 0x7A11ULL
#define CHUNK 1024  /* pulsed devices applied together */

/* GCC on x86-64: the lane functions and the walk's vector helpers are compiled per build and chosen at run
 * time (lane_build); elsewhere only the baseline versions exist. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define TRAIN_X86 1
#include <immintrin.h>
#else
#define TRAIN_X86 0
#endif

#if TRAIN_X86 && defined(__linux__)
#define LANES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LANES
#endif

uint64_t rram_train_key(uint64_t seed, uint64_t stream) {
    return rram_key(seed, (int64_t)stream, TRAIN_STREAM);
}

/* Pulsed devices of one chunk in structure-of-arrays form. Lane e is one device with its pulses
 * in one direction: w (weight), ref (the bound it moves towards), sis = sgn / span, ssp = sgn span
 * (sgn +1 up, -1 down), alpha, gamma - 1 of that direction (float32, unpacked from the direction's half of the
 * device's packed record at the flush), and the
 * counter of its next cycle-to-cycle draw. Lanes are sorted by pulse count, largest first, so the lanes still pulsing at
 * pulse p are a prefix [0, m_p): nothing is moved between pulses. */
#define PAD 16  /* lanes are processed in whole vectors: the widest VW below */
typedef struct {
    float w[CHUNK + PAD], ref[CHUNK + PAD], sis[CHUNK + PAD], ssp[CHUNK + PAD], alpha[CHUNK + PAD];
    float g1[CHUNK + PAD], dw[CHUNK + PAD];
    float yy[CHUNK + PAD];    /* pulse_lanes' scratch: with dw, the step's passes; */
    int32_t te[CHUNK + PAD];  /* the lanes whose noise draw is in a tail */
    uint64_t seq[CHUNK + PAD];  /* key + (counter + 1) * golden of the lane's next noise draw */
    int64_t k[CHUNK + PAD];
    float le[CHUNK + PAD], ll[CHUNK + PAD];  /* pulse_lanes' scratch: log2 y = le + ll; */
    float un[CHUNK + PAD], xt[CHUNK + PAD];   /* the draws' uniforms, the tail lanes' noise factors; */
    uint32_t tb[CHUNK / 8];                   /* the tail lanes of each vector as a bitmask (the narrowest VW) */
    uint32_t dn[CHUNK + PAD];                 /* 1 where the lane's pulses go down */
} lanes_t;

/* The device step (rram_train_lanes.h) per build: 16 lanes for AVX-512, one register (a chunk's last
 * vector is padded by 7.5 lanes on average, where the update's ~120-lane chunks made 32 lanes cost a
 * seventh of the work), and 8 for AVX2, one register: GCC keeps a generic vector wider than the
 * target's registers in memory between operations, so the AVX2 build at 16 lanes ran 25-40 % slower.
 * The baseline build (also rram_train_steps', and the only one off x86-64) at 8, its fused
 * multiply-adds by soft_fmaf where the target has no FMA instruction. */
#define VW 16
#define LANE_SUFFIX v4
#define LANE_SOFT_FMA 0
#if TRAIN_X86
#define LANE_MOVEMASK 512
#define LANE_TARGET __attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
#else
#define LANE_MOVEMASK 0
#define LANE_TARGET
#endif
#include "rram_train_lanes.h"
#define VW 8
#define LANE_SUFFIX v3
#define LANE_SOFT_FMA 0
#if TRAIN_X86
#define LANE_MOVEMASK 256
#define LANE_TARGET __attribute__((target("arch=x86-64-v3")))
#else
#define LANE_MOVEMASK 0
#define LANE_TARGET
#endif
#include "rram_train_lanes.h"
#define VW 8
#define LANE_SUFFIX base
#define LANE_MOVEMASK 0
#define LANE_TARGET
#if defined(__x86_64__) && !defined(__FMA__)
#define LANE_SOFT_FMA 1
#else
#define LANE_SOFT_FMA 0
#endif
#include "rram_train_lanes.h"

#if TRAIN_X86
/* The same body compiled for AVX-512 (full 512-bit vectors), AVX2 and baseline x86-64. */
__attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
static void pulse_lanes_v4(lanes_t *restrict L, int32_t s, int32_t m, float c2c) { pulse_lanes_body_v4(L, s, m, c2c); }
__attribute__((target("arch=x86-64-v3")))
static void pulse_lanes_v3(lanes_t *restrict L, int32_t s, int32_t m, float c2c) { pulse_lanes_body_v3(L, s, m, c2c); }
static void pulse_lanes_base(lanes_t *restrict L, int32_t s, int32_t m, float c2c) { pulse_lanes_body_base(L, s, m, c2c); }

__attribute__((target("arch=x86-64-v4,prefer-vector-width=512")))
static void unpack_lanes_v4(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) { unpack_lanes_body_v4(L, dev, s, m); }
__attribute__((target("arch=x86-64-v3")))
static void unpack_lanes_v3(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) { unpack_lanes_body_v3(L, dev, s, m); }
static void unpack_lanes_base(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) { unpack_lanes_body_base(L, dev, s, m); }

/* The best build this CPU runs: 4 (AVX-512), 3 (AVX2) or 0 (baseline). */
static int cpu_build(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") ? 4 : __builtin_cpu_supports("x86-64-v3") ? 3 : 0;
}

static int build_in_use = -1;  /* found once (a benign race: the same value), or set by rram_train_lane_build */

/* The build of the lane functions and the walk's helpers in use. */
static int lane_build(void) {
    if (build_in_use < 0) build_in_use = cpu_build();
    return build_in_use;
}

int rram_train_lane_build(int force) {
    if (force == 0 || force == 3 || force == 4) {
        if (force <= cpu_build()) build_in_use = force;
    } else if (force != -1) {
        return RRAM_E_ARG;
    }
    return lane_build();
}

/* The packed records of lanes [s, m)'s devices unpacked to the step's lanes (unpack_lanes_body). */
static void unpack_lanes(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) {
    const int b = lane_build();
    (b == 4 ? unpack_lanes_v4 : b == 3 ? unpack_lanes_v3 : unpack_lanes_base)(L, dev, s, m);
}

/* One pulse on the lanes [s, m) (pulse_lanes_body). */
static void pulse_lanes(lanes_t *restrict L, int32_t s, int32_t m, float c2c) {
    const int b = lane_build();
    (b == 4 ? pulse_lanes_v4 : b == 3 ? pulse_lanes_v3 : pulse_lanes_base)(L, s, m, c2c);
}
#else
int rram_train_lane_build(int force) { return force == -1 || force == 0 || force == 3 || force == 4 ? 0 : RRAM_E_ARG; }
static void unpack_lanes(lanes_t *restrict L, const float *restrict dev, int32_t s, int32_t m) { unpack_lanes_body_base(L, dev, s, m); }
static void pulse_lanes(lanes_t *restrict L, int32_t s, int32_t m, float c2c) { pulse_lanes_body_base(L, s, m, c2c); }
#endif

/* Noise counter of pulse p (0-based) on device k within one keyed batch of pulses. */
static inline uint64_t noise_counter(int64_t k, int32_t p) { return ((uint64_t)k << 6) + (uint64_t)p; }

/* Devices waiting to be pulsed, in one chunk of lanes: single pulses (nearly all of them in a sparse
 * update) are written straight into lanes [lo, CHUNK) as they are found, with the device's
 * record, direction and weight (fill_lane); entries with more pulses (and
 * every entry of rram_train_pulse) wait in q: device k, signed pulse count n (> 0 up, < 0 down,
 * 0 < |n| <= QUEUE_MAX_N), the key and first counter of its noise draws, and are gathered below lo,
 * sorted by count, at the flush. Entries of one chunk are distinct devices. */
#define QUEUE_MAX_N RRAM_TRAIN_MAX_BL
typedef struct {
    int64_t k[CHUNK];
    uint64_t key[CHUNK], ctr[CHUNK];
    int32_t n[CHUNK];
    int32_t m;
} queue_t;
typedef struct {
    lanes_t *L;
    queue_t q;
    int32_t lo;  /* single pulses occupy lanes [lo, CHUNK); full when q.m == lo */
} chunk_t;

static lanes_t *lanes_new(void) {
    /* 64-byte aligned, so that the vectors of a chunk starting at a multiple of 16 lanes are whole lines */
    lanes_t *L = aligned_alloc(64, (sizeof(lanes_t) + 63) / 64 * 64);
    if (L) memset(L, 0, sizeof *L);  /* lanes past a chunk's end are computed, never stored: finite values */
    return L;
}

static chunk_t *chunk_new(void) {
    chunk_t *R = malloc(sizeof(chunk_t));
    if (!R) return 0;
    R->L = lanes_new();
    if (!R->L) { free(R); return 0; }
    R->q.m = 0;
    R->lo = CHUNK;
    return R;
}

static void chunk_free(chunk_t *R) {
    if (R) free(R->L);
    free(R);
}

/* Append an entry with more than one pulse; the device's lines are prefetched for the flush's gather. */
static inline void queue_push(const rram_train_tile *t, queue_t *q, int64_t k, int32_t n, uint64_t key, uint64_t ctr) {
    const int32_t e = q->m++;
    q->k[e] = k;
    q->n[e] = n;
    q->key[e] = key;
    q->ctr[e] = ctr;
    __builtin_prefetch(t->w + k, 0, 3);
    __builtin_prefetch(t->dev + RRAM_TRAIN_DEV_STRIDE * k, 0, 3);
}

/* Lane e for device k pulsed up or down, its noise draws from counter ctr of key `key`: the device, its
 * direction and its weight (the device's parameters are unpacked from its record at the flush, where the
 * record's line is read once: copied here, the line's trip from L2 cost the walk ~3 cycles per pulse). A
 * chunk's devices are distinct, so the weight does not change before its flush. */
static inline void fill_lane(const rram_train_tile *t, lanes_t *restrict L, int32_t e, int64_t k, int up, uint64_t key,
                             uint64_t ctr) {
    L->k[e] = k;
    L->dn[e] = (uint32_t)!up;
    L->seq[e] = key + (ctr + 1) * RRAM_GOLDEN;
    L->w[e] = (float)t->w[k];
}

/* Apply a chunk's pulses and empty it: the queued entries filled into lanes [s, lo) in order of
 * decreasing pulse count (a counting sort), every lane's record unpacked, pulse 0 applied to lanes
 * [s, CHUNK), pulse p > 0 to the prefix of lanes with more than p pulses, weights stored. */
static void chunk_flush(rram_train_tile *t, chunk_t *R) {
    lanes_t *L = R->L;
    queue_t *q = &R->q;
    const int32_t m = q->m, lo = R->lo, s0 = lo - m;
    if (s0 == CHUNK) return;
    int32_t nmax = 1;  /* the largest count (1 without queued entries: most flushes of a sparse update) */
    int32_t start[QUEUE_MAX_N + 1], more[QUEUE_MAX_N + 1];  /* first lane of each count; end of the lanes with more than p pulses */
    if (m) {
        int32_t count[QUEUE_MAX_N + 1];  /* lanes per |n| */
        for (int32_t e = 0; e < m; ++e) {
            const int32_t a = q->n[e] > 0 ? q->n[e] : -q->n[e];
            nmax = a > nmax ? a : nmax;
        }
        memset(count, 0, sizeof(int32_t) * (size_t)(nmax + 1));
        for (int32_t e = 0; e < m; ++e) ++count[q->n[e] > 0 ? q->n[e] : -q->n[e]];
        int32_t acc = s0;
        for (int32_t a = nmax; a >= 1; --a) { start[a] = acc; acc += count[a]; more[a - 1] = acc; }
        for (int32_t i = 0; i < m; ++i) {
            const int64_t k = q->k[i];
            const int32_t n = q->n[i], a = n > 0 ? n : -n;
            fill_lane(t, L, start[a]++, k, n > 0, q->key[i], q->ctr[i]);  /* the lane of its first pulse */
        }
    }
    unpack_lanes(L, t->dev, s0, CHUNK);
    const float c2c = (float)t->c2c_sigma;
    pulse_lanes(L, s0, CHUNK, c2c);  /* from s0 rounded down to a whole vector of the build's width */
    for (int32_t p = 1; p < nmax; ++p) pulse_lanes(L, s0, more[p], c2c);
    for (int32_t e = s0; e < CHUNK; ++e) t->w[L->k[e]] = (double)L->w[e];
    q->m = 0;
    R->lo = CHUNK;
}

/* ------------------------------------------------------------------ stochastic trains */

/* A column of a sample as an entry j | XPOS where x_j >= 0 (so a row's direction is one exclusive or: up
 * where d x < 0): the entries of the sample's fired columns (fired_columns) and of its slot lists (for each
 * slot, the columns whose train fired in it: slot_lists), built once per sample and shared by all its rows. */
#define ENTRY_J 0xFFFF  /* columns < RRAM_TRAIN_MAX_DIM <= 2^16 */
#define ENTRY_XPOS_SHIFT 16
#define ROW_NEG_SHIFT 16  /* a fired row's entry: i | dneg << ROW_NEG_SHIFT (dneg: 1 where d < 0) */

/* Gradient descent moves w against sign(d x): a pulse on column xpos (the entry's XPOS bit) of a row with dneg (1 where
 * d < 0) goes up where d x < 0, that is where xpos equals dneg. */
static inline int pulse_up(uint32_t xpos, uint32_t dneg) { return (int)(xpos ^ dneg ^ 1u); }

/* Single pulses on row base / cols of the entries lst[0, n) (pulse_up), the chunk flushed whenever it is
 * full (push_list; this is its version for every build, one lane at a time). */
static inline void push_list_scalar(rram_train_tile *t, chunk_t *R, const int32_t *restrict lst, int32_t n,
                                    int64_t base, uint32_t dneg, uint64_t skey) {
    while (n > 0) {
        int32_t lo = R->lo;
        if (lo == R->q.m) {
            chunk_flush(t, R);
            lo = R->lo;
        }
        const int32_t take = n < lo - R->q.m ? n : lo - R->q.m;
        lanes_t *restrict L = R->L;
        for (int32_t z = 0; z < take; ++z) {
            const uint32_t e = (uint32_t)lst[z];
            const int64_t k = base + (int64_t)(e & ENTRY_J);
            fill_lane(t, L, --lo, k, pulse_up((e >> ENTRY_XPOS_SHIFT) & 1u, dneg), skey, noise_counter(k, 0));
        }
        R->lo = lo;
        lst += take;
        n -= take;
    }
}

#if TRAIN_X86
/* push_list_scalar sixteen lanes at a time: devices, directions, noise counters and weights (two gathers) of
 * a block of lanes as vectors, under a mask for the block's length. The same lanes' contents. */
__attribute__((target("arch=x86-64-v4")))
static void push_list_v4(rram_train_tile *t, chunk_t *R, const int32_t *restrict lst, int32_t n, int64_t base,
                         uint32_t dneg, uint64_t skey) {
    const double *wrow = t->w + base;
    const __m512i jmask = _mm512_set1_epi32(ENTRY_J), one = _mm512_set1_epi32(1), dv = _mm512_set1_epi32((int)dneg);
    const __m512i bv = _mm512_set1_epi64(base), g64 = _mm512_set1_epi64((long long)(64 * RRAM_GOLDEN));
    const __m512i kg = _mm512_set1_epi64((long long)(skey + RRAM_GOLDEN));
    while (n > 0) {
        int32_t lo = R->lo;
        if (lo == R->q.m) {
            chunk_flush(t, R);
            lo = R->lo;
        }
        int32_t take = n < lo - R->q.m ? n : lo - R->q.m;
        take = take < 16 ? take : 16;
        const int32_t e0 = lo - take;
        lanes_t *restrict L = R->L;
        const __mmask16 km = (__mmask16)((1u << take) - 1u);
        const __m512i e = _mm512_maskz_loadu_epi32(km, lst);
        const __m512i j = _mm512_and_si512(e, jmask);
        _mm512_mask_storeu_epi32(L->dn + e0, km, _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi32(e, ENTRY_XPOS_SHIFT), one), dv));
        const __m256i jlo = _mm512_castsi512_si256(j), jhi = _mm512_extracti64x4_epi64(j, 1);
        const __m512i k0 = _mm512_add_epi64(bv, _mm512_cvtepu32_epi64(jlo)), k1 = _mm512_add_epi64(bv, _mm512_cvtepu32_epi64(jhi));
        const __mmask8 m0 = (__mmask8)km, m1 = (__mmask8)(km >> 8);
        _mm512_mask_storeu_epi64(L->k + e0, m0, k0);
        _mm512_mask_storeu_epi64(L->k + e0 + 8, m1, k1);
        _mm512_mask_storeu_epi64(L->seq + e0, m0, _mm512_add_epi64(kg, _mm512_mullo_epi64(k0, g64)));
        _mm512_mask_storeu_epi64(L->seq + e0 + 8, m1, _mm512_add_epi64(kg, _mm512_mullo_epi64(k1, g64)));
        const __m512d w0 = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m0, jlo, wrow, 8);
        const __m512d w1 = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m1, jhi, wrow, 8);
        _mm256_mask_storeu_ps(L->w + e0, m0, _mm512_cvtpd_ps(w0));
        _mm256_mask_storeu_ps(L->w + e0 + 8, m1, _mm512_cvtpd_ps(w1));
        R->lo = e0;
        lst += take;
        n -= take;
    }
}
#endif

/* Single pulses on row base / cols of the entries lst[0, n), in the lanes below lo. */
static inline void push_list(rram_train_tile *t, chunk_t *R, const int32_t *restrict lst, int32_t n, int64_t base,
                             uint32_t dneg, uint64_t skey) {
#if TRAIN_X86
    if (lane_build() == 4) { push_list_v4(t, R, lst, n, base, dneg, skey); return; }
#endif
    push_list_scalar(t, R, lst, n, base, dneg, skey);
}

/* Lines [a, b) of 64 bytes from p towards L2, for the next band. */
static inline void prefetch_lines(const char *p, int32_t a, int32_t b) {
    for (int32_t c = a; c < b; ++c) __builtin_prefetch(p + 64 * (size_t)c, 0, 2);
}

/* A sample's fired columns (x train not empty) as entries (column | XPOS bit, as the slot lists) with their
 * trains (fm, and in fm32 as 32-bit words for trains of up to 32 slots), in column order, their number
 * returned; FIRED_PAD entries past the end with an empty train, so that coincident_columns reads whole
 * vectors. Branch-free. */
#define FIRED_PAD 16
#if TRAIN_X86
/* fired_columns sixteen columns at a time (AVX-512), by compressed stores; returns the columns done. */
__attribute__((target("arch=x86-64-v4")))
static int32_t fired_columns_v4(const uint64_t *restrict xg, const double *restrict xb, int32_t cols, int32_t *restrict fe,
                                uint64_t *restrict fm, uint32_t *restrict fm32, int32_t *n_out) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i xpos = _mm512_set1_epi32(1 << ENTRY_XPOS_SHIFT);
    int32_t n = 0, j = 0;
    for (; j + 16 <= cols; j += 16) {
        const __m512i g0 = _mm512_loadu_si512(xg + j), g1 = _mm512_loadu_si512(xg + j + 8);
        const __mmask8 f0 = _mm512_test_epi64_mask(g0, g0), f1 = _mm512_test_epi64_mask(g1, g1);
        const __mmask16 f = (__mmask16)((unsigned)f0 | (unsigned)f1 << 8);
        const __mmask8 n0 = _mm512_cmp_pd_mask(_mm512_loadu_pd(xb + j), _mm512_setzero_pd(), _CMP_LT_OQ);
        const __mmask8 n1 = _mm512_cmp_pd_mask(_mm512_loadu_pd(xb + j + 8), _mm512_setzero_pd(), _CMP_LT_OQ);
        const __mmask16 neg = (__mmask16)((unsigned)n0 | (unsigned)n1 << 8);
        const __m512i cj = _mm512_add_epi32(iota, _mm512_set1_epi32(j));
        const __m512i e = _mm512_mask_or_epi32(cj, (__mmask16)~neg, cj, xpos);
        _mm512_storeu_si512(fe + n, _mm512_maskz_compress_epi32(f, e));
        const __m256i h0 = _mm512_cvtepi64_epi32(g0), h1 = _mm512_cvtepi64_epi32(g1);
        _mm512_storeu_si512(fm32 + n, _mm512_maskz_compress_epi32(f, _mm512_inserti64x4(_mm512_castsi256_si512(h0), h1, 1)));
        _mm512_storeu_si512(fm + n, _mm512_maskz_compress_epi64(f0, g0));
        _mm512_storeu_si512(fm + n + __builtin_popcount(f0), _mm512_maskz_compress_epi64(f1, g1));
        n += __builtin_popcount(f);
    }
    *n_out = n;
    return j;
}
#endif

#if TRAIN_X86
/* fired_rows (below) eight rows at a time (AVX-512), by compressed stores. */
__attribute__((target("arch=x86-64-v4")))
static int32_t fired_rows_v4(const uint64_t *restrict dt, const double *restrict db, int32_t i, int32_t i1,
                             int32_t *restrict rg, uint64_t *restrict rdg) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), neg = _mm256_set1_epi32(1 << ROW_NEG_SHIFT);
    int32_t n = 0;
    for (; i < i1; i += 8) {
        const __mmask8 in = (__mmask8)(i1 - i >= 8 ? 0xFF : (1u << (i1 - i)) - 1u);
        const __m512i g = _mm512_maskz_loadu_epi64(in, dt + i);
        const __mmask8 f = _mm512_test_epi64_mask(g, g);
        const __mmask8 ng = _mm512_mask_cmp_pd_mask(f, _mm512_maskz_loadu_pd(in, db + i), _mm512_setzero_pd(), _CMP_LT_OQ);
        const __m256i r = _mm256_add_epi32(iota, _mm256_set1_epi32(i)), e = _mm256_mask_or_epi32(r, ng, r, neg);
        _mm256_mask_compressstoreu_epi32(rg + n, f, e);
        _mm512_mask_compressstoreu_epi64(rdg + n, f, g);
        n += __builtin_popcount(f);
    }
    return n;
}
#endif

/* The fired rows among [i, i1) (train dt[i] not empty) as entries i | dneg << ROW_NEG_SHIFT in rg and their trains
 * in rdg, in row order; their number returned. Branch-free. */
static inline int32_t fired_rows(const uint64_t *restrict dt, const double *restrict db, int32_t i, int32_t i1,
                                 int32_t *restrict rg, uint64_t *restrict rdg) {
#if TRAIN_X86
    if (lane_build() == 4) return fired_rows_v4(dt, db, i, i1, rg, rdg);
#endif
    int32_t n = 0;
    for (; i < i1; ++i) {
        rg[n] = i | (int32_t)((uint32_t)(db[i] < 0.0) << ROW_NEG_SHIFT);
        rdg[n] = dt[i];
        n += dt[i] != 0;
    }
    return n;
}

static inline int32_t fired_columns(const uint64_t *restrict xg, const double *restrict xb, int32_t cols,
                                    int32_t *restrict fe, uint64_t *restrict fm, uint32_t *restrict fm32) {
    int32_t n = 0, j = 0;
#if TRAIN_X86
    if (lane_build() == 4) j = fired_columns_v4(xg, xb, cols, fe, fm, fm32, &n);
#endif
    for (; j < cols; ++j) {  /* a fired column's x is nonzero and not NaN: its sign is its direction */
        fe[n] = j | (int32_t)((uint32_t)!(xb[j] < 0.0) << ENTRY_XPOS_SHIFT);
        fm[n] = xg[j];
        fm32[n] = (uint32_t)xg[j];
        n += xg[j] != 0;
    }
    for (int32_t z = n; z < n + FIRED_PAD; ++z) {
        fe[z] = 0;
        fm[z] = 0;
        fm32[z] = 0;
    }
    return n;
}

/* A sample's slot lists from its fired columns (fe, fm, nf): slot s's list, the entries of the columns whose
 * train fired in it in column order, at lst + so[s], so[bl] entries in all; lst needs FIRED_PAD entries of room
 * past them. One column at a time, no branch. */
static inline __attribute__((always_inline)) void slot_lists_scalar(const int32_t *restrict fe, const uint64_t *restrict fm,
                                                                    int32_t nf, int32_t bl, int32_t *restrict lst,
                                                                    int32_t *restrict so) {
    int32_t n = 0;
    for (int32_t sl = 0; sl < bl; ++sl) {
        so[sl] = n;
        for (int32_t z = 0; z < nf; ++z) {
            lst[n] = fe[z];
            n += (int32_t)(fm[z] >> sl & 1u);
        }
    }
    so[bl] = n;
}
#if TRAIN_X86
/* The lanes of e where bit l of keep is set, left-packed (the rest of the result is don't-care), for AVX2,
 * which has no compress: a permutation whose lane numbers one pext picks from 0..7, the mask's bits spread to
 * bytes by a pdep. */
__attribute__((target("arch=x86-64-v3")))
static inline __m256i left_pack_v3(__m256i e, unsigned keep) {
    const uint64_t sel = _pdep_u64(keep, 0x0101010101010101ULL) * 0xFFu;
    return _mm256_permutevar8x32_epi32(e, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)_pext_u64(0x0706050403020100ULL, sel))));
}

/* slot_lists_scalar sixteen columns at a time (trains of up to 32 slots), by compressed stores. */
__attribute__((target("arch=x86-64-v4")))
static void slot_lists_v4(const int32_t *restrict fe, const uint32_t *restrict fm32, int32_t nf, int32_t bl,
                          int32_t *restrict lst, int32_t *restrict so) {
    int32_t n = 0;
    for (int32_t sl = 0; sl < bl; ++sl) {
        so[sl] = n;
        const __m512i bit = _mm512_set1_epi32((int32_t)(1u << sl));
        for (int32_t v = 0; v < nf; v += 16) {
            const __mmask16 k = _mm512_test_epi32_mask(_mm512_loadu_si512(fm32 + v), bit);
            _mm512_storeu_si512(lst + n, _mm512_maskz_compress_epi32(k, _mm512_loadu_si512(fe + v)));
            n += __builtin_popcount(k);
        }
    }
    so[bl] = n;
}

/* slot_lists_scalar eight columns at a time (AVX2, trains of up to 32 slots), by left_pack_v3. */
__attribute__((target("arch=x86-64-v3")))
static void slot_lists_v3(const int32_t *restrict fe, const uint32_t *restrict fm32, int32_t nf, int32_t bl,
                          int32_t *restrict lst, int32_t *restrict so) {
    int32_t n = 0;
    for (int32_t sl = 0; sl < bl; ++sl) {
        so[sl] = n;
        const __m256i bit = _mm256_set1_epi32((int32_t)(1u << sl));
        for (int32_t v = 0; v < nf; v += 8) {
            const __m256i f = _mm256_loadu_si256((const __m256i *)(const void *)(fm32 + v));
            const unsigned k = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(f, bit), bit)));
            const __m256i e = _mm256_loadu_si256((const __m256i *)(const void *)(fe + v));
            _mm256_storeu_si256((__m256i *)(void *)(lst + n), left_pack_v3(e, k));
            n += __builtin_popcount(k);
        }
    }
    so[bl] = n;
}
#endif

static inline void slot_lists(const int32_t *restrict fe, const uint64_t *restrict fm, const uint32_t *restrict fm32,
                              int32_t nf, int32_t bl, int32_t *restrict lst, int32_t *restrict so) {
#if TRAIN_X86
    if (bl <= 32 && lane_build() == 4) {
        slot_lists_v4(fe, fm32, nf, bl, lst, so);
        return;
    }
    if (bl <= 32 && lane_build() == 3) {
        slot_lists_v3(fe, fm32, nf, bl, lst, so);
        return;
    }
#endif
    slot_lists_scalar(fe, fm, nf, bl, lst, so);
}

/* The coincidences of a row whose train di fired in several slots with a sample's fired columns (fe, fm, nf):
 * the entries of the columns with one coincident slot in jl (their number returned), the positions in the
 * fired list of those with more in qe (*nq of them). jl and qe need room for nf + FIRED_PAD. One column at a
 * time, no branch. */
static inline __attribute__((always_inline)) int32_t coincident_scalar(const int32_t *restrict fe, const uint64_t *restrict fm,
                                                                       int32_t nf, uint64_t di, int32_t *restrict jl,
                                                                       int32_t *restrict qe, int32_t *nq_out) {
    int32_t nj = 0, nq = 0;
    for (int32_t z = 0; z < nf; ++z) {
        const uint64_t a = fm[z] & di, more = a & (a - 1);
        jl[nj] = fe[z];
        qe[nq] = z;
        nj += (a != 0) & (more == 0);
        nq += more != 0;
    }
    *nq_out = nq;
    return nj;
}

#if TRAIN_X86
/* coincident_scalar sixteen columns at a time, the entries kept by compressed stores: trains of up to 32 slots
 * as 32-bit lanes (the tests and compressions bound the loop, all on one port), longer ones as two vectors of
 * 64-bit lanes. Columns with several coincident slots are rare in a sparse update: compressed only where
 * there are any. */
__attribute__((target("arch=x86-64-v4")))
static int32_t coincident_v4(const int32_t *restrict fe, const uint64_t *restrict fm, const uint32_t *restrict fm32,
                             int32_t nf, uint64_t di, int32_t *restrict jl, int32_t *restrict qe, int32_t *nq_out) {
    int32_t nj = 0, nq = 0;
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    if (di >> 32 == 0) {  /* trains of up to 32 slots: every column's train fits its 32-bit word too */
        const __m512i dv = _mm512_set1_epi32((int32_t)(uint32_t)di), one = _mm512_set1_epi32(1);
        for (int32_t v = 0; v < nf; v += 16) {
            const __m512i a = _mm512_and_si512(_mm512_loadu_si512(fm32 + v), dv), e = _mm512_loadu_si512(fe + v);
            const __mmask16 more = _mm512_test_epi32_mask(a, _mm512_sub_epi32(a, one));
            const __mmask16 single = _mm512_mask_test_epi32_mask((__mmask16)~more, a, a);
            _mm512_storeu_si512(jl + nj, _mm512_maskz_compress_epi32(single, e));
            nj += __builtin_popcount(single);
            if (more) {
                _mm512_storeu_si512(qe + nq, _mm512_maskz_compress_epi32(more, _mm512_add_epi32(iota, _mm512_set1_epi32(v))));
                nq += __builtin_popcount(more);
            }
        }
    } else {
        const __m512i dv = _mm512_set1_epi64((long long)di), one = _mm512_set1_epi64(1);
        for (int32_t v = 0; v < nf; v += 16) {
            const __m512i a0 = _mm512_and_si512(_mm512_loadu_si512(fm + v), dv);
            const __m512i a1 = _mm512_and_si512(_mm512_loadu_si512(fm + v + 8), dv);
            const unsigned more = (unsigned)_mm512_test_epi64_mask(a0, _mm512_sub_epi64(a0, one)) |
                                  (unsigned)_mm512_test_epi64_mask(a1, _mm512_sub_epi64(a1, one)) << 8;
            const unsigned hit = (unsigned)_mm512_test_epi64_mask(a0, a0) | (unsigned)_mm512_test_epi64_mask(a1, a1) << 8;
            const __m512i e = _mm512_loadu_si512(fe + v);
            _mm512_storeu_si512(jl + nj, _mm512_maskz_compress_epi32((__mmask16)(hit & ~more), e));
            nj += __builtin_popcount(hit & ~more);
            if (more) {
                _mm512_storeu_si512(qe + nq, _mm512_maskz_compress_epi32((__mmask16)more, _mm512_add_epi32(iota, _mm512_set1_epi32(v))));
                nq += __builtin_popcount(more);
            }
        }
    }
    *nq_out = nq;
    return nj;
}

/* coincident_scalar eight columns at a time for trains of up to 32 slots (AVX2): the entries kept by
 * left_pack_v3 and a full store (the lanes past the kept ones are overwritten next). */
__attribute__((target("arch=x86-64-v3")))
static int32_t coincident_v3(const int32_t *restrict fe, const uint32_t *restrict fm32, int32_t nf, uint32_t di,
                             int32_t *restrict jl, int32_t *restrict qe, int32_t *nq_out) {
    const __m256i dv = _mm256_set1_epi32((int32_t)di), one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    int32_t nj = 0, nq = 0;
    for (int32_t v = 0; v < nf; v += 8) {
        const __m256i a = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(const void *)(fm32 + v)), dv);
        const __m256i e = _mm256_loadu_si256((const __m256i *)(const void *)(fe + v));
        const unsigned none = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(a, zero)));
        const unsigned one_bit = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(
            _mm256_cmpeq_epi32(_mm256_and_si256(a, _mm256_sub_epi32(a, one)), zero)));
        const unsigned single = one_bit & ~none & 0xFFu, more = ~one_bit & 0xFFu;
        _mm256_storeu_si256((__m256i *)(void *)(jl + nj), left_pack_v3(e, single));
        nj += __builtin_popcount(single);
        if (more) {
            for (unsigned b = more; b; b &= b - 1) qe[nq++] = v + __builtin_ctz(b);
        }
    }
    *nq_out = nq;
    return nj;
}
#endif

static inline int32_t coincident_columns(const int32_t *restrict fe, const uint64_t *restrict fm, const uint32_t *restrict fm32,
                                         int32_t nf, uint64_t di, int32_t *restrict jl, int32_t *restrict qe, int32_t *nq) {
#if TRAIN_X86
    if (lane_build() == 4) return coincident_v4(fe, fm, fm32, nf, di, jl, qe, nq);
    if (lane_build() == 3 && di >> 32 == 0) return coincident_v3(fe, fm32, nf, (uint32_t)di, jl, qe, nq);
#endif
    return coincident_scalar(fe, fm, nf, di, jl, qe, nq);
}

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

/* The eight high bits of a byte mask as bits 0..7 (byte l -> bit l). */
static inline uint64_t byte_mask_bits(uint64_t m) { return ((m >> 7) * 0x0102040810204080ULL) >> 56; }

/* floor(p 2^32) for p = |v| scale clamped to [0, 1] (NaN: 0), by selects only (vectorizes). */
static inline uint64_t threshold_of(double v, double scale) {
    double pr = fabs(v) * scale;
    pr = pr > 0.0 ? pr : 0.0;
    pr = pr < 1.0 ? pr : 1.0;
    return (uint64_t)(int64_t)(pr * 4294967296.0);
}

/* Scratch of trains_of for up to n trains, each array with room for n rounded up to 64. */
typedef struct {
    uint64_t *hb, *g, *tie, *r;  /* per train: the threshold's top byte hi repeated, hi - 1 repeated, tied slots, a draw */
    uint32_t *lo;                /* per train: the threshold's low 24 bits */
    uint8_t *tied;               /* per train: 1 if a slot is tied */
} train_scratch_t;

/* Within a draw loop a train's slot 8 q + l is at bit 8 l + q: draw q shifts its eight byte results
 * (the high bits of the bytes) into its own bit of each byte, two operations where gathering them
 * in slot order costs a multiply. This transposes the 8x8 bit matrix back into slot order. */
static inline uint64_t slot_order(uint64_t x) {
    uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
    return x ^ t ^ (t << 28);
}

/* Draw q of trains 0 .. n - 1 (slots 8 q .. 8 q + 7): a slot's byte b below the threshold's top byte
 * hi (b <= hi - 1) sets its bit in out, b equal to hi (a tie, 1 in 256) its bit in tie, both in draw
 * order (above), so the tie pass knows its slots without drawing again. The draws go to r first and
 * are then compared byte by byte: the vectorizer turns that loop into byte compares (one or two
 * instructions per vector, where the same test on the bytes of a word takes five) in every build.
 * The first draw assigns (no clearing). */
static inline __attribute__((always_inline)) void draw_slots(uint64_t zz, int32_t q, int first, int32_t n,
                                                             const uint64_t *restrict hb, const uint64_t *restrict g,
                                                             uint64_t *restrict out, uint64_t *restrict tie,
                                                             uint64_t *restrict r) {
    for (int32_t i = 0; i < n; ++i, zz += 8 * RRAM_GOLDEN) r[i] = rram_mix64(zz);
    const uint8_t bq = (uint8_t)(1u << q);  /* bit q of each byte */
    const uint8_t *restrict rb = (const uint8_t *)r, *restrict gb = (const uint8_t *)g, *restrict hbb = (const uint8_t *)hb;
    uint8_t *restrict ob = (uint8_t *)out, *restrict eb = (uint8_t *)tie;
    for (int32_t k = 0; k < 8 * n; ++k) {
        const uint8_t o = rb[k] <= gb[k] ? bq : 0, e = rb[k] == hbb[k] ? bq : 0;
        ob[k] = first ? o : ob[k] | o;
        eb[k] = first ? e : eb[k] | e;
    }
}

/* Trains number id0 .. id0 + n - 1 of `bl` slots for firing probabilities p_i = |v_i| scale (p >= 1:
 * every slot; p <= 0: none). Each slot is set with probability thr / 2^32, thr = floor(p 2^32):
 * eight slots per 64-bit draw (draw q of train id at counter 8 id + q), a slot's byte b compared with
 * the threshold's top byte; on a tie (1 in 256) 24 bits of the slot's own tie draw decide, so each
 * slot is exactly a 32-bit uniform below thr. The passes over all trains are branch-free integer work
 * (vectorized); the rare ties are settled last, found through a bitmap of the tied trains. */
static inline __attribute__((always_inline)) void trains_of(const update_keys_t *uk, uint64_t id0, const double *restrict v,
                                                            double scale, int32_t n, int32_t bl,
                                                            uint64_t *restrict out, const train_scratch_t *sc) {
    uint64_t used = 0;  /* the slots < bl in draw order */
    for (int32_t q = 0; 8 * q < bl; ++q) {
        const int32_t m = bl - 8 * q < 8 ? bl - 8 * q : 8;
        used |= ((m == 8 ? ~0ULL : (1ULL << (8 * m)) - 1ULL) & BYTES_ONE) << q;
    }
    uint64_t *restrict hb = sc->hb, *restrict g = sc->g, *restrict tie = sc->tie, *restrict r = sc->r;
    uint32_t *restrict lo = sc->lo;
    uint8_t *restrict tied = sc->tied;
    const int32_t n64 = (n + 63) & ~63;
    for (int32_t i = 0; i < n; ++i) {  /* per train: the threshold's top byte repeated, its low bits */
        const uint64_t th = threshold_of(v[i], scale);
        hb[i] = (th >> 24) * BYTES_ONE;  /* hi = 0 .. 256 */
        g[i] = hb[i] - BYTES_ONE;        /* b < hi <=> b <= hi - 1 (hi >= 1; hi = 0 is masked below) */
        lo[i] = (uint32_t)(th & 0xFFFFFFu);
    }
    /* rram_draw(key, 8 (id0 + i) + q) = mix64(key + (8 (id0 + i) + q + 1) golden): the sum steps by 8 golden */
    const uint64_t z0 = uk->train + (8 * id0 + 1) * RRAM_GOLDEN;
    draw_slots(z0, 0, 1, n, hb, g, out, tie, r);
    for (int32_t q = 1; 8 * q < bl; ++q) draw_slots(z0 + (uint64_t)q * RRAM_GOLDEN, q, 0, n, hb, g, out, tie, r);
    for (int32_t i = 0; i < n; ++i) {
        out[i] = hb[i] ? slot_order(out[i] & used) : 0;  /* hi = 0: no slot below it */
        tie[i] = lo[i] ? tie[i] & used : 0;              /* lo = 0: a tie is not below the threshold */
        tied[i] = tie[i] != 0;
    }
    for (int32_t i = n; i < n64; ++i) tied[i] = 0;
    for (int32_t i0 = 0; i0 < n; i0 += 64) {  /* the ~12 % of trains with a tie, 64 at a time */
        uint64_t bm = 0;
        for (int32_t b = 0; b < 8; ++b) {
            uint64_t f;
            memcpy(&f, tied + i0 + 8 * b, sizeof f);
            bm |= byte_mask_bits(f << 7) << (8 * b);  /* byte l (0 or 1) -> bit l */
        }
        for (; bm; bm &= bm - 1) {
            const int32_t i = i0 + __builtin_ctzll(bm);
            for (uint64_t ts = tie[i]; ts; ts &= ts - 1) {
                const int32_t b = __builtin_ctzll(ts), sl = 8 * (b & 7) + (b >> 3);
                out[i] |= (uint64_t)((rram_draw(uk->tie, 64 * (id0 + (uint64_t)i) + (uint64_t)sl) & 0xFFFFFFu) < lo[i]) << sl;
            }
        }
    }
}

/* max |v_i| over n values (0 for none; NaN ignored), on four vectors of two lanes (GCC's vectorizer had left a
 * lane array of this loop scalar, ~2 cycles per value; vectors wider than 16 bytes are lowered lane by lane,
 * with branches, in the builds whose registers are narrower): the maximum of values >= +0 does not depend on
 * the order in which they are taken. |v| by clearing the sign bit; a NaN compares false and is skipped. */
static inline __attribute__((always_inline)) double abs_max(const double *restrict v, int32_t n) {
    typedef double v2d __attribute__((vector_size(16)));
    typedef int64_t v2l __attribute__((vector_size(16)));
    typedef v2d v2d_mem __attribute__((may_alias, aligned(8)));
    v2d m[4] = {{0.0, 0.0}, {0.0, 0.0}, {0.0, 0.0}, {0.0, 0.0}};
    int32_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int q = 0; q < 4; ++q) {
            const v2d a = (v2d)((v2l)(*(const v2d_mem *)(const void *)(v + i + 2 * q)) & 0x7FFFFFFFFFFFFFFFLL);
            const v2l gt = a > m[q];
            m[q] = (v2d)(((v2l)a & gt) | ((v2l)m[q] & ~gt));
        }
    double r = 0.0;
    for (int q = 0; q < 4; ++q)
        for (int l = 0; l < 2; ++l) r = m[q][l] > r ? m[q][l] : r;
    for (; i < n; ++i) {
        const double a = fabs(v[i]);
        r = a > r ? a : r;
    }
    return r;
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
        p[RRAM_TRAIN_DEV_SPAN] = p[RRAM_TRAIN_DEV_SPAN_DOWN] = (float)t->w_max[k] - (float)t->w_min[k];
        if (!(p[RRAM_TRAIN_DEV_SPAN] > 0.0f)) return RRAM_E_ARG;  /* bounds equal in float32 */
    }
    return RRAM_OK;
}

#define GROUP_BYTES (8 * 1024 * 1024)  /* scratch of one group of samples: a whole usual batch */
#define BAND_BYTES (512 * 1024)        /* device and weight lines of one band of rows */

/* What the update keeps of each sample of a group: firing probability factor of the rows, the key
 * of its cycle-to-cycle draws, whether any column fired. */
typedef struct {
    double cd;
    uint64_t skey;
    int32_t active;
} sample_t;

/* The update's working memory, carved from one block (the tile's scratch when it is large enough, else
 * one allocation per call): byte offsets of its arrays, each 64-byte aligned, for one group of samples. */
typedef struct {
    size_t xbits, smp, dtr, tie, jl, loff, lbase, fe, fm, fm32, nf, qe, rl, rd, rb, lists, total, dim64;
    int32_t group, band_rows, bands;
} update_layout_t;

static inline size_t take64(size_t *at, size_t bytes) {
    const size_t o = *at;
    *at += (bytes + 63) & ~(size_t)63;
    return o;
}

static update_layout_t update_layout(int32_t rows, int32_t cols, int32_t batch, int32_t bl) {
    update_layout_t ly;
    const int32_t dim = rows > cols ? rows : cols;
    /* Rows per band: their device (32 B) and weight (8 B) lines in about half a megabyte. */
    ly.band_rows = cols * 40 < BAND_BYTES ? BAND_BYTES / (cols * 40) : 1;
    ly.bands = (rows + ly.band_rows - 1) / ly.band_rows;
    /* what a group keeps per sample: column and row trains, fired columns, slot list offsets, fired rows (entry
     * and train) and their bands' starts */
    const size_t per_sample = sizeof(uint64_t) * ((size_t)cols + (size_t)rows) + 16 * ((size_t)cols + FIRED_PAD) +
                              sizeof(int32_t) * (size_t)(bl + 2) + sizeof(sample_t) +
                              (sizeof(int32_t) + sizeof(uint64_t)) * (size_t)rows + sizeof(int32_t) * (size_t)(ly.bands + 1);
    int32_t group = (int32_t)(GROUP_BYTES / per_sample);
    group = group < 1 ? 1 : (group > batch ? (batch > 0 ? batch : 1) : group);
    const size_t g = (size_t)group;
    size_t at = 0;
    ly.group = group;
    ly.dim64 = ((size_t)dim + 63) & ~(size_t)63;
    ly.xbits = take64(&at, sizeof(uint64_t) * g * (size_t)cols);                /* [g][cols] column trains */
    ly.smp = take64(&at, sizeof(sample_t) * g);
    ly.dtr = take64(&at, sizeof(uint64_t) * g * (size_t)rows);                  /* [g][rows] row trains */
    ly.tie = take64(&at, sizeof(uint64_t) * 6 * ly.dim64);                       /* trains_of's scratch */
    ly.jl = take64(&at, sizeof(int32_t) * ((size_t)cols + 64));                  /* coincident columns of a row and sample */
    ly.loff = take64(&at, sizeof(int32_t) * g * (size_t)(bl + 1));               /* [g][bl + 1] slot list offsets */
    ly.lbase = take64(&at, sizeof(int32_t) * g);                                 /* [g] start of a sample's lists */
    ly.fe = take64(&at, sizeof(int32_t) * g * ((size_t)cols + FIRED_PAD));       /* [g][cols + pad] fired columns' entries */
    ly.fm = take64(&at, sizeof(uint64_t) * g * ((size_t)cols + FIRED_PAD));      /* [g][cols + pad] and their trains */
    ly.fm32 = take64(&at, sizeof(uint32_t) * g * ((size_t)cols + FIRED_PAD));    /* [g][cols + pad] the same, 32 bits */
    ly.nf = take64(&at, sizeof(int32_t) * g);                                    /* [g] number of fired columns */
    ly.rl = take64(&at, sizeof(int32_t) * g * (size_t)rows);                     /* [g][rows] fired rows: row | ROW_NEG */
    ly.rd = take64(&at, sizeof(uint64_t) * g * (size_t)rows);                    /* [g][rows] and their trains */
    ly.rb = take64(&at, sizeof(int32_t) * g * (size_t)(ly.bands + 1));           /* [g][bands + 1] each band's first */
    ly.qe = take64(&at, sizeof(int32_t) * ((size_t)cols + FIRED_PAD));           /* a row's multiple-pulse entries */
    /* The group's slot lists, room for their longest (every column in every slot): only what a group's
     * lists hold is ever touched (a sparse update's ~1.5 % of it), the rest stays unmapped address space. */
    ly.lists = take64(&at, sizeof(int32_t) * (g * (size_t)bl * (size_t)cols + FIRED_PAD));
    ly.total = at;
    return ly;
}

size_t rram_train_update_scratch(const rram_train_tile *t, int32_t batch, int32_t bl) {
    if (!tile_ok(t) || batch < 0 || bl < 1 || bl > RRAM_TRAIN_MAX_BL) return 0;
    return update_layout(t->rows, t->cols, batch, bl).total;
}

LANES int rram_train_update(rram_train_tile *t, const double *x, const double *d, int32_t batch,
                            const rram_train_update_cfg *cfg, int64_t *pulses_out) {
    if (!tile_ok(t) || !x || !d || batch < 0 || !cfg || cfg->bl < 1 || cfg->bl > RRAM_TRAIN_MAX_BL ||
        !(cfg->lr > 0.0) || !(cfg->dw_min > 0.0))
        return RRAM_E_ARG;
    const int32_t rows = t->rows, cols = t->cols, bl = cfg->bl;
    const update_layout_t ly = update_layout(rows, cols, batch, bl);
    const int32_t group = ly.group;
    char *own = 0, *blk = t->scratch && t->scratch_bytes >= ly.total ? (char *)t->scratch : 0;
    if (!blk) blk = own = aligned_alloc(64, ly.total);
    chunk_t *R = chunk_new();  /* one chunk: a sample's pulses are on distinct devices */
    if (!blk || !R) {
        free(own);
        chunk_free(R);
        return RRAM_E_NOMEM;
    }
    uint64_t *xbits = (uint64_t *)(blk + ly.xbits);
    sample_t *smp = (sample_t *)(blk + ly.smp);
    uint64_t *dtr = (uint64_t *)(blk + ly.dtr), *tie = (uint64_t *)(blk + ly.tie);
    int32_t *jl = (int32_t *)(blk + ly.jl), *loff = (int32_t *)(blk + ly.loff), *lbase = (int32_t *)(blk + ly.lbase);
    int32_t *lists = (int32_t *)(blk + ly.lists);
    int32_t *fe = (int32_t *)(blk + ly.fe), *nf = (int32_t *)(blk + ly.nf), *qe = (int32_t *)(blk + ly.qe);
    int32_t *rl = (int32_t *)(blk + ly.rl), *rb = (int32_t *)(blk + ly.rb);
    uint64_t *rd = (uint64_t *)(blk + ly.rd);
    uint64_t *fm = (uint64_t *)(blk + ly.fm);
    uint32_t *fm32 = (uint32_t *)(blk + ly.fm32);
    const size_t fstride = (size_t)cols + FIRED_PAD;
    const size_t dim64 = ly.dim64;
    const int32_t band_rows = ly.band_rows, bands = ly.bands;
    const train_scratch_t tsc = {tie, tie + dim64, tie + 2 * dim64, tie + 3 * dim64, (uint32_t *)(tie + 4 * dim64),
                                 (uint8_t *)(tie + 5 * dim64)};
    const uint64_t ukey = rram_draw(t->key, t->counter++);
    const update_keys_t uk = {ukey, rram_mix64(ukey ^ TIE_SALT), rram_mix64(ukey ^ NOISE_SALT)};
    const double k_prod = cfg->lr / ((double)bl * cfg->dw_min);  /* cx * cd */
    int64_t pulses = 0;
    for (int32_t b0 = 0; b0 < batch; b0 += group) {
        const int32_t ng = batch - b0 < group ? batch - b0 : group;
        /* Column trains of the group's samples. */
        for (int32_t g = 0; g < ng; ++g) {
            const double *xb = x + (size_t)(b0 + g) * cols, *db = d + (size_t)(b0 + g) * rows;
            sample_t *sm = &smp[g];
            sm->active = 0;  /* no column fired */
            const double xmax = abs_max(xb, cols), dmax = abs_max(db, rows);
            if (!(xmax > 0.0) || !(dmax > 0.0) || !isfinite(xmax) || !isfinite(dmax)) continue;
            double cx;
            if (cfg->update_management) {
                /* Equal largest firing probability on both sides: cx xmax = cd dmax. */
                cx = sqrt(k_prod * dmax / xmax);
                sm->cd = sqrt(k_prod * xmax / dmax);
            } else {
                cx = sm->cd = sqrt(k_prod);
            }
            uint64_t *xg = xbits + (size_t)g * cols;
            trains_of(&uk, col_train(b0 + g, 0), xb, cx, cols, bl, xg, &tsc);
            trains_of(&uk, row_train(b0 + g, 0), db, sm->cd, rows, bl, dtr + (size_t)g * rows, &tsc);
            nf[g] = fired_columns(xg, xb, cols, fe + g * fstride, fm + g * fstride, fm32 + g * fstride);
            sm->active = nf[g] > 0;
            {  /* its fired rows in order with their directions and trains, and where each band's begin, for the
                * walk (no test per row there, the row's data read in order) */
                const uint64_t *dt = dtr + (size_t)g * rows;
                int32_t *rg = rl + (size_t)g * rows, *bg = rb + (size_t)g * (bands + 1), nr = 0;
                uint64_t *rdg = rd + (size_t)g * rows;
                for (int32_t bi = 0, i = 0; bi < bands; ++bi, i += band_rows) {
                    bg[bi] = nr;
                    nr += fired_rows(dt, db, i, rows - i < band_rows ? rows : i + band_rows, rg + nr, rdg + nr);
                }
                bg[bands] = nr;
            }
            /* Key of this sample's cycle-to-cycle draws: pulse p on device k draws at counter
             * 64 k + p, whatever the order in which the pulses are found. */
            sm->skey = rram_draw(uk.noise, (uint64_t)(b0 + g));

        }
        /* Slot lists of the group's samples. */
        for (int32_t g = 0, at = 0; g < ng; ++g) {
            if (!smp[g].active) continue;  /* not walked */
            int32_t *so = loff + (size_t)g * (bl + 1);
            lbase[g] = at;
            slot_lists(fe + g * fstride, fm + g * fstride, fm32 + g * fstride, nf[g], bl, lists + at, so);
            at += so[bl];
        }
        /* Band by band (rows whose device and weight lines fit in L2 together), every sample of the
         * group in order and the band's rows within a sample: one sample's pulses are on distinct
         * devices, so one chunk of lanes holds them and is applied at the end of the sample (or when
         * full), and a device's pulses stay in sample order. The band's lines are loaded while the
         * band before it is walked (a slice per sample) and stay in cache for all its samples. */
        for (int32_t i0 = 0, bi = 0; i0 < rows; i0 += band_rows, ++bi) {
            const int32_t i1 = rows - i0 < band_rows ? rows : i0 + band_rows;
            const int64_t next0 = (int64_t)i1 * cols, next_n = (int64_t)(rows - i1 < band_rows ? rows - i1 : band_rows) * cols;
            const char *pf = (const char *)(t->dev + RRAM_TRAIN_DEV_STRIDE * next0);
            const char *pw = (const char *)(t->w + next0);
            const int32_t pf_lines = (int32_t)(next_n * RRAM_TRAIN_DEV_STRIDE * 4 / 64), pw_lines = (int32_t)(next_n * 8 / 64);
            for (int32_t g = 0; g < ng; ++g) {
                /* This sample's slice of the next band's lines, a few per fired row (the rest after them): in one
                 * burst, the prefetches would wait for free fill buffers and stall the walk. */
                int32_t fc = pf_lines * g / ng, wc = pw_lines * g / ng;
                const int32_t fc1 = pf_lines * (g + 1) / ng, wc1 = pw_lines * (g + 1) / ng;
                const sample_t *sm = &smp[g];
                if (!sm->active) {
                    prefetch_lines(pf, fc, fc1);
                    prefetch_lines(pw, wc, wc1);
                    continue;
                }
                const int32_t *lg = lists + lbase[g], *so = loff + (size_t)g * (bl + 1);
                const int32_t *feg = fe + g * fstride;
                const uint64_t *fmg = fm + g * fstride;
                const uint32_t *fmg32 = fm32 + g * fstride;
                /* The band's fired rows of this sample. */
                const int32_t *rg = rl + (size_t)g * rows, *bg = rb + (size_t)g * (bands + 1);
                const uint64_t *rdg = rd + (size_t)g * rows;
                const int32_t z0 = bg[bi], z1 = bg[bi + 1];
                const int32_t fz = (fc1 - fc + z1 - z0) / (z1 - z0 + 1), wz = (wc1 - wc + z1 - z0) / (z1 - z0 + 1);
                for (int32_t z = z0; z < z1; ++z) {
                    const int32_t i = rg[z] & ENTRY_J;
                    prefetch_lines(pf, fc, fc + fz < fc1 ? fc + fz : fc1);
                    prefetch_lines(pw, wc, wc + wz < wc1 ? wc + wz : wc1);
                    fc += fz;
                    wc += wz;
                    const uint64_t di = rdg[z];
                    const int64_t base = (int64_t)i * cols;
                    const uint32_t dneg = (uint32_t)rg[z] >> ROW_NEG_SHIFT;  /* the row's direction (pulse_up) */
                    if ((di & (di - 1)) == 0) {  /* one slot: its list */
                        const int32_t sl = __builtin_ctzll(di);
                        push_list(t, R, lg + so[sl], so[sl + 1] - so[sl], base, dneg, sm->skey);
                        pulses += so[sl + 1] - so[sl];
                        continue;
                    }
                    /* Several slots: the coincidences with the sample's fired columns, those with one pulse
                     * pushed as single pulses, those with more queued with their counts. */
                    int32_t nq;
                    const int32_t nj = coincident_columns(feg, fmg, fmg32, nf[g], di, jl, qe, &nq);
                    push_list(t, R, jl, nj, base, dneg, sm->skey);
                    pulses += nj;
                    for (int32_t c = 0; c < nq; ++c) {
                        const int32_t e = feg[qe[c]], j = e & ENTRY_J;
                        const int32_t n = di >> 32 ? __builtin_popcountll(di & fmg[qe[c]]) : __builtin_popcount((uint32_t)di & fmg32[qe[c]]);
                        if (R->q.m == R->lo) chunk_flush(t, R);  /* full (push_list leaves it so) */
                        queue_push(t, &R->q, base + j, pulse_up((uint32_t)(e >> ENTRY_XPOS_SHIFT) & 1u, dneg) ? n : -n,
                                   sm->skey, noise_counter(base + j, 0));
                        pulses += n;
                    }
                }
                prefetch_lines(pf, fc, fc1);
                prefetch_lines(pw, wc, wc1);
                chunk_flush(t, R);  /* this sample's pulses before the next sample's */
            }
        }
    }
    chunk_free(R);
    free(own);
    if (pulses_out) *pulses_out = pulses;
    return RRAM_OK;
}

int rram_train_pulse(rram_train_tile *t, const int64_t *idx, const int32_t *n_pulses, size_t n) {
    if (!tile_ok(t) || (n && (!idx || !n_pulses))) return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (size_t c = 0; c < n; ++c)
        if (idx[c] < 0 || idx[c] >= total) return RRAM_E_ARG;
    chunk_t *R = chunk_new();
    if (!R) return RRAM_E_NOMEM;
    queue_t *q = &R->q;
    /* One key per call; pulse p of list entry c draws at counter 2^32 c + p. Entries are applied
     * in list order, so a device listed twice sees its first entry's pulses before the second's:
     * entries share a flush only while their indices increase (distinct devices); counts above
     * QUEUE_MAX_N go in pieces. */
    const uint64_t skey = rram_draw(t->key, t->counter++);
    int64_t last = -1;
    for (size_t c = 0; c < n; ++c) {
        int32_t left = n_pulses[c] > 0 ? n_pulses[c] : -n_pulses[c];
        const int32_t sgn = n_pulses[c] > 0 ? 1 : -1;
        for (int32_t done_n = 0; left > 0;) {
            const int32_t piece = left > QUEUE_MAX_N ? QUEUE_MAX_N : left;
            if (q->m == CHUNK || idx[c] <= last) chunk_flush(t, R);
            queue_push(t, q, idx[c], sgn * piece, skey, ((uint64_t)c << 32) + (uint64_t)done_n);
            last = idx[c];
            left -= piece;
            done_n += piece;
        }
    }
    chunk_flush(t, R);
    chunk_free(R);
    return RRAM_OK;
}

int rram_train_steps(const rram_train_tile *t, double *up_out, double *down_out) {
    if (!tile_ok(t)) return RRAM_E_ARG;
    steps_body_base(t, up_out, down_out);  /* any build gives the same bits */
    return RRAM_OK;
}
