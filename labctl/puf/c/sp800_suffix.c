/* Suffix and LCP arrays of a bit string, their LCP intervals (6.3.5 t-tuple, 6.3.6 LRS), and the
 * collision walk (6.3.2).
 *
 * Suffix array: prefix doubling (Manber and Myers) started from 64-bit windows sorted by an LSD
 * radix sort (random bit strings of 10^7 bits repeat nothing longer, so need no doubling); each doubling orders the suffixes by their second half from the previous order and
 * then by their first half with one counting sort. LCP: Kasai's algorithm. */
#include <stdlib.h>
#include <string.h>

#include "sp800.h"

#define WINDOW 64

typedef struct {
    uint64_t key;
    int32_t pos;
} keyed;

/* Stable LSD radix sort of a by key (16-bit digits); key and position move together, so every
 * pass reads and writes sequentially. */
static int radix_sort(keyed *a, int64_t n) {
    keyed *tmp = malloc(n * sizeof *tmp);
    int64_t *count = malloc(((size_t)1 << 16) * sizeof *count);
    if (!tmp || !count) {
        free(tmp);
        free(count);
        return -1;
    }
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, ((size_t)1 << 16) * sizeof *count);
        for (int64_t i = 0; i < n; i++) count[(a[i].key >> shift) & 0xffff]++;
        int64_t sum = 0;
        for (int d = 0; d < 1 << 16; d++) {
            int64_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (int64_t i = 0; i < n; i++) tmp[count[(a[i].key >> shift) & 0xffff]++] = a[i];
        keyed *swap = a;
        a = tmp;
        tmp = swap;
    }
    /* four passes: the result is back in the caller's array */
    free(tmp);
    free(count);
    return 0;
}

int sp_suffix_array(const uint8_t *bits, int64_t n, int64_t *sa_out, int64_t *lcp) {
    if (n < 1 || n >= ((int64_t)1 << 31)) return -1;
    int rc = -1;
    int32_t *sa = malloc(n * sizeof *sa);
    int32_t *rank = malloc(n * sizeof *rank);
    int32_t *next = malloc(n * sizeof *next);
    int32_t *tmp = malloc(n * sizeof *tmp);
    int64_t *start = malloc((n + 2) * sizeof *start);
    keyed *key = malloc(n * sizeof *key);
    if (!sa || !rank || !next || !tmp || !start || !key) goto done;
    /* The first WINDOW bits of each suffix, zero-padded. A suffix shorter than WINDOW sorts before
     * the longer ones with the same padded window (it is a prefix of them), and the shorter of two
     * first: they enter the stable sort first, shortest first. */
    int64_t shorts = n < WINDOW - 1 ? n : WINDOW - 1, k = 0;
    uint64_t w = 0;
    for (int64_t i = 0; i < WINDOW && i < n; i++) w |= (uint64_t)bits[i] << (WINDOW - 1 - i);
    for (int64_t i = 0; i < n; i++) {
        if (i < n - shorts) {
            key[k].key = w;
            key[k].pos = (int32_t)i;
            k++;
        }
        w <<= 1;
        if (i + WINDOW < n) w |= bits[i + WINDOW];
    }
    memmove(key + shorts, key, k * sizeof *key);
    w = 0;
    for (int64_t j = 0; j < shorts; j++) {
        int64_t i = n - 1 - j; /* j + 1 bits left */
        w = (w >> 1) | ((uint64_t)bits[i] << (WINDOW - 1));
        key[j].key = w;
        key[j].pos = (int32_t)i;
    }
    if (radix_sort(key, n) != 0) goto done;
    for (int64_t i = 0; i < n; i++) sa[i] = key[i].pos;
    /* ranks from 1 (0 is "past the end"), dense; equal only for the same window and length */
    int64_t distinct = 1;
    rank[sa[0]] = 1;
    for (int64_t i = 1; i < n; i++) {
        int64_t a = sa[i - 1], c = sa[i];
        int64_t la = n - a < WINDOW ? n - a : WINDOW, lc = n - c < WINDOW ? n - c : WINDOW;
        if (key[i].key != key[i - 1].key || la != lc) distinct++;
        rank[c] = (int32_t)distinct;
    }
    for (int64_t h = WINDOW; distinct < n; h *= 2) {
        /* order by the second half: the suffixes without one first, then from the current order */
        int64_t m = 0;
        for (int64_t i = n - h > 0 ? n - h : 0; i < n; i++) tmp[m++] = (int32_t)i;
        for (int64_t j = 0; j < n; j++)
            if (sa[j] >= h) tmp[m++] = (int32_t)(sa[j] - h);
        /* stable counting sort by the first half */
        memset(start, 0, (distinct + 2) * sizeof *start);
        for (int64_t i = 0; i < n; i++) start[rank[i] + 1]++;
        for (int64_t r = 1; r <= distinct + 1; r++) start[r] += start[r - 1];
        for (int64_t i = 0; i < n; i++) sa[start[rank[tmp[i]]]++] = tmp[i];
        /* new ranks */
        int64_t d = 1;
        next[sa[0]] = 1;
        for (int64_t i = 1; i < n; i++) {
            int64_t a = sa[i - 1], c = sa[i];
            int32_t a2 = a + h < n ? rank[a + h] : 0, c2 = c + h < n ? rank[c + h] : 0;
            if (rank[a] != rank[c] || a2 != c2) d++;
            next[c] = (int32_t)d;
        }
        memcpy(rank, next, n * sizeof *rank);
        distinct = d;
    }
    /* Kasai: rank[i] - 1 is the position of suffix i */
    int64_t common = 0;
    lcp[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t r = rank[i] - 1;
        if (r == 0) {
            common = 0;
            continue;
        }
        int64_t j = sa[r - 1];
        while (i + common < n && j + common < n && bits[i + common] == bits[j + common]) common++;
        lcp[r] = common;
        if (common > 0) common--;
    }
    for (int64_t i = 0; i < n; i++) sa_out[i] = sa[i];
    rc = 0;
done:
    free(sa);
    free(rank);
    free(next);
    free(tmp);
    free(start);
    free(key);
    return rc;
}

int sp_lcp_intervals(const int64_t *lcp, int64_t n, int64_t *max_count, int64_t *diff) {
    /* stack of open intervals (value, left bound); the bottom one, value 0, never closes */
    int64_t *st_l = malloc((n + 1) * sizeof *st_l);
    int64_t *st_lb = malloc((n + 1) * sizeof *st_lb);
    if (!st_l || !st_lb) {
        free(st_l);
        free(st_lb);
        return -1;
    }
    int64_t top = 0;
    st_l[0] = 0;
    st_lb[0] = 0;
    for (int64_t i = 1; i <= n; i++) {
        int64_t li = i < n ? lcp[i] : 0; /* a final 0 closes every open interval */
        int64_t lb = i - 1;
        while (li < st_l[top]) {
            int64_t value = st_l[top], begin = st_lb[top];
            top--;
            int64_t below = st_l[top];
            int64_t size = i - begin;
            int64_t parent = li > below ? li : below;
            if (size > max_count[value]) max_count[value] = size;
            int64_t pairs = size * (size - 1) / 2;
            diff[parent + 1] += pairs;
            diff[value + 1] -= pairs;
            lb = begin;
        }
        if (li > st_l[top]) {
            top++;
            st_l[top] = li;
            st_lb[top] = lb;
        }
    }
    free(st_l);
    free(st_lb);
    return 0;
}

int sp_collision(const uint8_t *bits, int64_t n, int64_t *out) {
    int64_t i = 0, v = 0, total = 0, total_sq = 0;
    /* t_i = 2 if the next two samples are equal, else 3 (any 3 bits hold a collision) */
    while (i < n - 1) {
        int64_t t;
        if (bits[i] == bits[i + 1])
            t = 2;
        else if (i < n - 2)
            t = 3;
        else
            break;
        v++;
        total += t;
        total_sq += t * t;
        i += t;
    }
    out[0] = v;
    out[1] = total;
    out[2] = total_sq;
    return 0;
}
