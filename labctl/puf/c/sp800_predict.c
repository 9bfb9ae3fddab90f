/* SP 800-90B prediction estimators 6.3.7-6.3.10: the predictors and the scoreboard.
 * The rules the text leaves open follow NIST's ea_non_iid (see labctl/puf/prediction.py). */
#include <stdlib.h>
#include <string.h>

#include "sp800.h"

typedef unsigned __int128 u128;

/* ------------------------------------------------------------------ scoreboard (6.3.7 step 3) */

typedef struct {
    int64_t scores[SP_LAG_DEPTH];
    int winner;
    int64_t correct, run, longest;
} board;

/* The winner's guess is counted (when it made one: a step without one neither extends nor ends
 * the run), then every predictor that guessed right scores; one that reaches the winner's score
 * becomes the winner (so the last one updated wins a tie made in this step). */
static void board_step(board *b, int k, const uint8_t *hit, const uint8_t *made) {
    int w = b->winner;
    if (made == NULL || made[w]) {
        if (hit[w]) {
            b->correct++;
            if (++b->run > b->longest) b->longest = b->run;
        } else {
            b->run = 0;
        }
    }
    for (int j = 0; j < k; j++) {
        if (hit[j] && ++b->scores[j] >= b->scores[w]) w = j;
    }
    b->winner = w;
}

static void run_step(board *b, int right) {
    if (right) {
        b->correct++;
        if (++b->run > b->longest) b->longest = b->run;
    } else {
        b->run = 0;
    }
}

/* ------------------------------------------------------------------ 6.3.7 MultiMCW */

static const int64_t MCW_WINDOWS[SP_MCW_WINDOWS] = {63, 255, 1023, 4095};

typedef struct {
    int64_t w;
    int32_t count[256];
    int64_t last[256]; /* last position of each value seen so far */
    int mode;
} mcw_window;

/* Most common value of the window, ties to the value seen most recently. */
static int mcw_rescan(const mcw_window *m, int alphabet) {
    int best = 0;
    for (int v = 1; v < alphabet; v++) {
        if (m->count[v] > m->count[best] || (m->count[v] == m->count[best] && m->last[v] > m->last[best]))
            best = v;
    }
    return best;
}

/* Binary samples: every window is odd, so its mode is 1 exactly when it holds more ones than zeros
 * (no ties); a running count of ones per window. */
static int mcw_binary(const uint8_t *s, int64_t n, int64_t *out) {
    const int64_t first = MCW_WINDOWS[0];
    int64_t start = 0;
    for (int64_t t = 0; t < first; t++) start += s[t];
    int64_t ones[SP_MCW_WINDOWS]; /* ones in s[max(0, i - w) .. i - 1] */
    for (int j = 0; j < SP_MCW_WINDOWS; j++) ones[j] = start;
    board b = {0};
    uint8_t hit[SP_MCW_WINDOWS];
    for (int64_t i = first; i < n; i++) {
        for (int j = 0; j < SP_MCW_WINDOWS; j++) {
            const int64_t w = MCW_WINDOWS[j];
            if (i > first) ones[j] += s[i - 1] - (i - 1 - w >= 0 ? s[i - 1 - w] : 0);
            /* a window not full yet makes no guess, scored as wrong */
            hit[j] = i >= w && (2 * ones[j] > w) == s[i];
        }
        board_step(&b, SP_MCW_WINDOWS, hit, NULL);
    }
    out[0] = b.correct;
    out[1] = n - first;
    out[2] = b.longest;
    return 0;
}

int sp_multi_mcw(const uint8_t *s, int64_t n, int alphabet, int64_t *out) {
    if (alphabet < 1 || alphabet > 256 || n <= MCW_WINDOWS[SP_MCW_WINDOWS - 1]) return -1;
    if (alphabet == 2) return mcw_binary(s, n, out);
    mcw_window *win = calloc(SP_MCW_WINDOWS, sizeof *win);
    if (win == NULL) return -1;
    for (int j = 0; j < SP_MCW_WINDOWS; j++) {
        win[j].w = MCW_WINDOWS[j];
        for (int v = 0; v < 256; v++) win[j].last[v] = -1;
    }
    board b = {0};
    uint8_t hit[SP_MCW_WINDOWS];
    for (int64_t i = MCW_WINDOWS[0]; i < n; i++) {
        for (int j = 0; j < SP_MCW_WINDOWS; j++) {
            mcw_window *m = &win[j];
            if (i < m->w) {
                hit[j] = 0; /* the window is not full yet: no guess, scored as wrong */
                continue;
            }
            if (i == m->w) {
                for (int64_t t = 0; t < m->w; t++) {
                    m->count[s[t]]++;
                    m->last[s[t]] = t;
                }
                m->mode = mcw_rescan(m, alphabet);
            } else {
                /* slide: the oldest value leaves, s[i-1] enters (and is the most recent) */
                int gone = s[i - m->w - 1];
                m->count[gone]--;
                if (gone == m->mode) m->mode = mcw_rescan(m, alphabet);
                int x = s[i - 1];
                m->count[x]++;
                m->last[x] = i - 1;
                if (m->count[x] >= m->count[m->mode]) m->mode = x;
            }
            hit[j] = m->mode == s[i];
        }
        board_step(&b, SP_MCW_WINDOWS, hit, NULL);
    }
    free(win);
    out[0] = b.correct;
    out[1] = n - MCW_WINDOWS[0];
    out[2] = b.longest;
    return 0;
}

/* ------------------------------------------------------------------ 6.3.8 Lag */

int sp_lag(const uint8_t *s, int64_t n, int64_t *out) {
    if (n < 3 || n >= ((int64_t)1 << 31)) return -1;
    enum { D = SP_LAG_DEPTH };
    /* score[D - d] is the score of lag d, so that lag d's guess s[i - d] is s[i - D + (D - d)]:
     * the loops run forwards over memory (and vectorize) */
    int32_t score[D] = {0};
    int winner = 1; /* a lag, 1..D */
    board b = {0};
    for (int64_t i = 1; i < n; i++) {
        const uint8_t x = s[i];
        /* before the start there is no guess (scored wrong) */
        run_step(&b, i - winner >= 0 && s[i - winner] == x);
        const int first = i < D ? D - (int)i : 0; /* lags 1..min(i, D) guess */
        const int64_t base = i - D;
        int32_t top = 0;
        for (int k = first; k < D; k++) {
            score[k] += s[base + k] == x;
            top = score[k] > top ? score[k] : top;
        }
        /* the scoreboard's rule in one step: of the predictors right now, the last one (largest
         * lag) at the top score becomes the winner (the winner always holds the top score) */
        for (int k = first; k < D; k++) {
            if (score[k] == top && s[base + k] == x) {
                winner = D - k;
                break;
            }
        }
    }
    out[0] = b.correct;
    out[1] = n - 1;
    out[2] = b.longest;
    return 0;
}

/* ------------------------------------------------------------------ binary samples (6.3.9, 6.3.10)
 * Contexts of m bits index count arrays directly: counts[offset(m) + 2 context + y]. */

#define BIN_DEPTH 16
#define BIN_CELLS (((int64_t)1 << (BIN_DEPTH + 2)) - 4) /* sum over m = 1..16 of 2^(m+1) */

static int64_t bin_offset(int m) { return ((int64_t)1 << (m + 1)) - 4; } /* sum over m' < m of 2^(m'+1) */

static int mmc_binary(const uint8_t *s, int64_t n, int64_t *out) {
    int32_t *counts = calloc(BIN_CELLS, sizeof *counts);
    if (counts == NULL) return -1;
    int64_t distinct[BIN_DEPTH] = {0};
    board b = {0};
    uint8_t hit[BIN_DEPTH], made[BIN_DEPTH];
    uint32_t reg = 0; /* s[i-1] in bit 0, s[i-2] in bit 1, ... */
    for (int64_t i = 0; i < n; i++) {
        const int x = s[i];
        const int depth = i < BIN_DEPTH ? (int)i : BIN_DEPTH;
        if (i >= 2) {
            for (int m = 1; m <= BIN_DEPTH; m++) {
                made[m - 1] = hit[m - 1] = 0;
                if (m > depth) continue;
                const int32_t *c = counts + bin_offset(m) + 2 * (reg & ((1u << m) - 1));
                /* most frequent next bit, ties to 1 */
                made[m - 1] = c[0] > 0 || c[1] > 0;
                hit[m - 1] = made[m - 1] && (c[1] >= c[0]) == x;
            }
            board_step(&b, BIN_DEPTH, hit, made);
        }
        for (int m = 1; m <= depth; m++) {
            int32_t *c = counts + bin_offset(m) + 2 * (reg & ((1u << m) - 1)) + x;
            if (*c == 0) {
                if (distinct[m - 1] >= SP_MMC_MAX_ENTRIES) continue;
                distinct[m - 1]++;
            }
            ++*c;
        }
        reg = (reg << 1) | (uint32_t)x;
    }
    free(counts);
    out[0] = b.correct;
    out[1] = n - 2;
    out[2] = b.longest;
    return 0;
}

static int lz78y_binary(const uint8_t *s, int64_t n, int64_t *out) {
    int32_t *counts = calloc(BIN_CELLS, sizeof *counts);
    uint8_t *known = calloc(BIN_CELLS / 2, 1); /* [offset(m) / 2 + context]: in the dictionary */
    if (counts == NULL || known == NULL) {
        free(counts);
        free(known);
        return -1;
    }
    int64_t dictionary = 0;
    board b = {0};
    uint32_t reg = 0;
    for (int64_t i = 0; i < BIN_DEPTH; i++) reg = (reg << 1) | s[i];
    for (int64_t i = BIN_DEPTH; i < n; i++) {
        const int x = s[i];
        if (i > BIN_DEPTH) {
            int32_t best = 0;
            int y = 0;
            for (int m = 1; m <= BIN_DEPTH; m++) { /* ties to the longer prefix */
                const uint32_t ctx = reg & ((1u << m) - 1);
                if (!known[bin_offset(m) / 2 + ctx]) continue;
                const int32_t *c = counts + bin_offset(m) + 2 * ctx;
                const int32_t top = c[1] >= c[0] ? c[1] : c[0];
                if (top > 0 && top >= best) {
                    best = top;
                    y = c[1] >= c[0];
                }
            }
            run_step(&b, best > 0 && y == x);
        }
        for (int m = BIN_DEPTH; m >= 1; m--) { /* new prefixes in order of first sight, longer first */
            const uint32_t ctx = reg & ((1u << m) - 1);
            uint8_t *k = &known[bin_offset(m) / 2 + ctx];
            if (!*k) {
                if (dictionary >= SP_LZ78Y_MAX_DICTIONARY) continue;
                *k = 1;
                dictionary++;
            }
            counts[bin_offset(m) + 2 * ctx + x]++;
        }
        reg = (reg << 1) | (uint32_t)x;
    }
    free(counts);
    free(known);
    out[0] = b.correct;
    out[1] = n - BIN_DEPTH - 1;
    out[2] = b.longest;
    return 0;
}

/* ------------------------------------------------------------------ count tables (6.3.9, 6.3.10) */

/* Contexts of one length m: context -> id, direct when the packed context has at most 16 bits,
 * else open addressing on the 128-bit packed value. For each id the most frequent next value
 * (ties to the larger value) and its count. */
typedef struct {
    int direct;
    uint64_t mask; /* hash capacity - 1 */
    u128 *keys;
    int32_t *ids;  /* -1: empty slot (hash) or context not present (direct) */
    int64_t size, cap_ids;
    int32_t *best_cnt;
    uint8_t *best_y;
} ctx_table;

/* (context id, next value) -> count, for all lengths: direct for binary samples, else hashed. */
typedef struct {
    uint64_t mask;
    uint64_t *keys; /* UINT64_MAX: empty */
    int32_t *counts;
    int64_t size;
} pair_table;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t hash128(u128 k) { return mix64((uint64_t)k ^ mix64((uint64_t)(k >> 64) + 0x9e3779b97f4a7c15ULL)); }

static int ctx_init(ctx_table *t, int key_bits) {
    memset(t, 0, sizeof *t);
    if (key_bits <= 16) {
        t->direct = 1;
        t->cap_ids = (int64_t)1 << key_bits;
        t->ids = malloc(t->cap_ids * sizeof *t->ids);
        t->best_cnt = calloc(t->cap_ids, sizeof *t->best_cnt);
        t->best_y = calloc(t->cap_ids, 1);
        if (!t->ids || !t->best_cnt || !t->best_y) return -1;
        memset(t->ids, 0xff, t->cap_ids * sizeof *t->ids);
        return 0;
    }
    t->mask = 1023;
    t->keys = malloc((t->mask + 1) * sizeof *t->keys);
    t->ids = malloc((t->mask + 1) * sizeof *t->ids);
    t->cap_ids = 512;
    t->best_cnt = malloc(t->cap_ids * sizeof *t->best_cnt);
    t->best_y = malloc(t->cap_ids);
    if (!t->keys || !t->ids || !t->best_cnt || !t->best_y) return -1;
    memset(t->ids, 0xff, (t->mask + 1) * sizeof *t->ids);
    return 0;
}

static void ctx_free(ctx_table *t) {
    free(t->keys);
    free(t->ids);
    free(t->best_cnt);
    free(t->best_y);
}

static int32_t ctx_find(const ctx_table *t, u128 key) {
    if (t->direct) return t->ids[(uint64_t)key];
    uint64_t h = hash128(key) & t->mask;
    while (t->ids[h] >= 0) {
        if (t->keys[h] == key) return t->ids[h];
        h = (h + 1) & t->mask;
    }
    return -1;
}

static int ctx_grow(ctx_table *t) {
    uint64_t cap = (t->mask + 1) * 2;
    u128 *keys = malloc(cap * sizeof *keys);
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!keys || !ids) {
        free(keys);
        free(ids);
        return -1;
    }
    memset(ids, 0xff, cap * sizeof *ids);
    for (uint64_t i = 0; i <= t->mask; i++) {
        if (t->ids[i] < 0) continue;
        uint64_t h = hash128(t->keys[i]) & (cap - 1);
        while (ids[h] >= 0) h = (h + 1) & (cap - 1);
        keys[h] = t->keys[i];
        ids[h] = t->ids[i];
    }
    free(t->keys);
    free(t->ids);
    t->keys = keys;
    t->ids = ids;
    t->mask = cap - 1;
    return 0;
}

/* Adds a context known to be absent; returns its id or -1 (memory). */
static int32_t ctx_add(ctx_table *t, u128 key) {
    int32_t id;
    if (t->direct) {
        id = (int32_t)(uint64_t)key;
        t->ids[id] = id;
        t->size++;
        return id;
    }
    if ((t->size + 1) * 2 > (int64_t)(t->mask + 1) && ctx_grow(t) != 0) return -1;
    if (t->size + 1 > t->cap_ids) {
        int64_t cap = t->cap_ids * 2;
        int32_t *bc = realloc(t->best_cnt, cap * sizeof *bc);
        if (bc == NULL) return -1;
        t->best_cnt = bc;
        uint8_t *by = realloc(t->best_y, cap);
        if (by == NULL) return -1;
        t->best_y = by;
        t->cap_ids = cap;
    }
    id = (int32_t)t->size++;
    t->best_cnt[id] = 0;
    t->best_y[id] = 0;
    uint64_t h = hash128(key) & t->mask;
    while (t->ids[h] >= 0) h = (h + 1) & t->mask;
    t->keys[h] = key;
    t->ids[h] = id;
    return id;
}

static int pair_init(pair_table *p) {
    p->mask = 4095;
    p->size = 0;
    p->keys = malloc((p->mask + 1) * sizeof *p->keys);
    p->counts = malloc((p->mask + 1) * sizeof *p->counts);
    if (!p->keys || !p->counts) return -1;
    memset(p->keys, 0xff, (p->mask + 1) * sizeof *p->keys);
    return 0;
}

static void pair_free(pair_table *p) {
    free(p->keys);
    free(p->counts);
}

static int pair_grow(pair_table *p) {
    uint64_t cap = (p->mask + 1) * 2;
    uint64_t *keys = malloc(cap * sizeof *keys);
    int32_t *counts = malloc(cap * sizeof *counts);
    if (!keys || !counts) {
        free(keys);
        free(counts);
        return -1;
    }
    memset(keys, 0xff, cap * sizeof *keys);
    for (uint64_t i = 0; i <= p->mask; i++) {
        if (p->keys[i] == UINT64_MAX) continue;
        uint64_t h = mix64(p->keys[i]) & (cap - 1);
        while (keys[h] != UINT64_MAX) h = (h + 1) & (cap - 1);
        keys[h] = p->keys[i];
        counts[h] = p->counts[i];
    }
    free(p->keys);
    free(p->counts);
    p->keys = keys;
    p->counts = counts;
    p->mask = cap - 1;
    return 0;
}

/* Slot of key, or of the empty place where it would go. */
static uint64_t pair_slot(const pair_table *p, uint64_t key) {
    uint64_t h = mix64(key) & p->mask;
    while (p->keys[h] != UINT64_MAX && p->keys[h] != key) h = (h + 1) & p->mask;
    return h;
}

/* Table of one context length plus its pair counts (keys: id << 8 | y within this length). */
typedef struct {
    ctx_table ctx;
    pair_table pairs;
    int32_t *direct_counts; /* [context * alphabet + y] when the contexts are few (else NULL) */
    int alphabet;
    int64_t distinct_pairs;
} order_table;

/* Counts one more (id, y); returns the new count, 0 when the pair is new and not allowed, -1 on
 * memory. The context's most frequent next value moves to y when y reaches its count (ties to the
 * larger value). */
static int64_t count_pair(order_table *o, int32_t id, int y, int allow_new) {
    int32_t c;
    if (o->direct_counts != NULL) {
        int32_t *slot = &o->direct_counts[(int64_t)id * o->alphabet + y];
        if (*slot == 0) {
            if (!allow_new) return 0;
            o->distinct_pairs++;
        }
        c = ++*slot;
        goto best;
    }
    uint64_t key = ((uint64_t)id << 8) | (uint64_t)y;
    uint64_t h = pair_slot(&o->pairs, key);
    if (o->pairs.keys[h] == key) {
        c = ++o->pairs.counts[h];
    } else {
        if (!allow_new) return 0;
        if ((o->pairs.size + 1) * 2 > (int64_t)(o->pairs.mask + 1)) {
            if (pair_grow(&o->pairs) != 0) return -1;
            h = pair_slot(&o->pairs, key);
        }
        o->pairs.keys[h] = key;
        o->pairs.counts[h] = c = 1;
        o->pairs.size++;
        o->distinct_pairs++;
    }
best:;
    int32_t *bc = &o->ctx.best_cnt[id];
    uint8_t *by = &o->ctx.best_y[id];
    if (c > *bc || (c == *bc && y > *by)) {
        *bc = c;
        *by = (uint8_t)y;
    }
    return c;
}

/* Bits per value of the packed contexts (at least 1). */
static int value_bits(int alphabet) {
    int bits = 1;
    while ((1 << bits) < alphabet) bits++;
    return bits;
}

/* Direct pair counts up to this many (context, value) cells per context length. */
#define DIRECT_PAIRS ((int64_t)1 << 20)

static int orders_init(order_table *o, int depth, int bits, int alphabet) {
    memset(o, 0, depth * sizeof *o);
    for (int m = 1; m <= depth; m++) {
        order_table *t = &o[m - 1];
        t->alphabet = alphabet;
        if (ctx_init(&t->ctx, bits * m) != 0 || pair_init(&t->pairs) != 0) return -1;
        if (t->ctx.direct && t->ctx.cap_ids * alphabet <= DIRECT_PAIRS) {
            t->direct_counts = calloc(t->ctx.cap_ids * alphabet, sizeof *t->direct_counts);
            if (t->direct_counts == NULL) return -1;
        }
    }
    return 0;
}

static void orders_free(order_table *o, int depth) {
    for (int m = 0; m < depth; m++) {
        ctx_free(&o[m].ctx);
        pair_free(&o[m].pairs);
        free(o[m].direct_counts);
    }
}

/* ------------------------------------------------------------------ 6.3.9 MultiMMC */

int sp_multi_mmc(const uint8_t *s, int64_t n, int alphabet, int64_t *out) {
    if (alphabet < 1 || alphabet > 256 || n < 3) return -1;
    if (alphabet == 2) return mmc_binary(s, n, out);
    const int bits = value_bits(alphabet);
    order_table o[SP_MMC_DEPTH];
    int rc = -1;
    if (orders_init(o, SP_MMC_DEPTH, bits, alphabet) != 0) goto done;
    u128 masks[SP_MMC_DEPTH];
    for (int m = 1; m <= SP_MMC_DEPTH; m++)
        masks[m - 1] = bits * m >= 128 ? ~(u128)0 : (((u128)1 << (bits * m)) - 1);
    board b = {0};
    uint8_t hit[SP_MMC_DEPTH], made[SP_MMC_DEPTH];
    int32_t ids[SP_MMC_DEPTH];
    u128 reg = 0; /* s[i-1] in the lowest bits, s[i-2] above it, ... */
    for (int64_t i = 0; i < n; i++) {
        const int x = s[i];
        const int depth = i < SP_MMC_DEPTH ? (int)i : SP_MMC_DEPTH;
        for (int m = 1; m <= depth; m++) ids[m - 1] = ctx_find(&o[m - 1].ctx, reg & masks[m - 1]);
        if (i >= 2) {
            for (int m = 1; m <= SP_MMC_DEPTH; m++) {
                int32_t id = m <= depth ? ids[m - 1] : -1;
                made[m - 1] = id >= 0 && o[m - 1].ctx.best_cnt[id] > 0;
                hit[m - 1] = made[m - 1] && o[m - 1].ctx.best_y[id] == x;
            }
            board_step(&b, SP_MMC_DEPTH, hit, made);
        }
        for (int m = 1; m <= depth; m++) {
            order_table *t = &o[m - 1];
            int32_t id = ids[m - 1];
            int allow = t->distinct_pairs < SP_MMC_MAX_ENTRIES;
            if (id < 0) {
                if (!allow) continue;
                id = ctx_add(&t->ctx, reg & masks[m - 1]);
                if (id < 0) goto done;
            }
            if (count_pair(t, id, x, allow) < 0) goto done;
        }
        reg = (reg << bits) | (u128)x;
    }
    out[0] = b.correct;
    out[1] = n - 2;
    out[2] = b.longest;
    rc = 0;
done:
    orders_free(o, SP_MMC_DEPTH);
    return rc;
}

/* ------------------------------------------------------------------ 6.3.10 LZ78Y */

int sp_lz78y(const uint8_t *s, int64_t n, int alphabet, int64_t *out) {
    const int depth = SP_LZ78Y_DEPTH;
    if (alphabet < 1 || alphabet > 256 || n < depth + 2) return -1;
    if (alphabet == 2) return lz78y_binary(s, n, out);
    const int bits = value_bits(alphabet);
    order_table o[SP_LZ78Y_DEPTH];
    int rc = -1;
    if (orders_init(o, depth, bits, alphabet) != 0) goto done;
    u128 masks[SP_LZ78Y_DEPTH];
    for (int m = 1; m <= depth; m++)
        masks[m - 1] = bits * m >= 128 ? ~(u128)0 : (((u128)1 << (bits * m)) - 1);
    int64_t dictionary = 0;
    board b = {0};
    int32_t ids[SP_LZ78Y_DEPTH];
    u128 reg = 0;
    for (int64_t i = 0; i < depth; i++) reg = (reg << bits) | (u128)s[i];
    for (int64_t i = depth; i < n; i++) {
        const int x = s[i];
        for (int m = 1; m <= depth; m++) ids[m - 1] = ctx_find(&o[m - 1].ctx, reg & masks[m - 1]);
        if (i > depth) {
            /* the prefix whose most common next value was seen most often; ties to the longer */
            int32_t best = 0;
            int y = 0;
            for (int m = 1; m <= depth; m++) {
                int32_t id = ids[m - 1];
                if (id < 0) continue;
                int32_t c = o[m - 1].ctx.best_cnt[id];
                if (c > 0 && c >= best) {
                    best = c;
                    y = o[m - 1].ctx.best_y[id];
                }
            }
            run_step(&b, best > 0 && y == x);
        }
        /* the dictionary takes new prefixes in order of first sight, the longer first */
        for (int m = depth; m >= 1; m--) {
            int32_t id = ids[m - 1];
            if (id < 0) {
                if (dictionary >= SP_LZ78Y_MAX_DICTIONARY) continue;
                id = ctx_add(&o[m - 1].ctx, reg & masks[m - 1]);
                if (id < 0) goto done;
                dictionary++;
            }
            if (count_pair(&o[m - 1], id, x, 1) < 0) goto done;
        }
        reg = (reg << bits) | (u128)x;
    }
    out[0] = b.correct;
    out[1] = n - depth - 1;
    out[2] = b.longest;
    rc = 0;
done:
    orders_free(o, depth);
    return rc;
}
