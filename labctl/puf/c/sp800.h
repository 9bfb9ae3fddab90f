/* SP 800-90B (January 2018) non-IID estimators: the sequential parts, in C.
 *
 * Samples are bytes with values 0..alphabet-1 (alphabet <= 256); bit strings are bytes 0/1.
 * The prediction estimators (6.3.7-6.3.10) return, in out[3], C (correct guesses), N (guesses)
 * and the longest run of correct guesses; 6.3.7 steps 4-5 are done by the caller
 * (labctl/puf/prediction.py documents the choices, which follow NIST's ea_non_iid).
 * Every function returns 0, or -1 when memory ran out or an argument is out of range.
 */
#include <stdint.h>

#define SP_MCW_WINDOWS 4
#define SP_LAG_DEPTH 128
#define SP_MMC_DEPTH 16
#define SP_MMC_MAX_ENTRIES 100000
#define SP_LZ78Y_DEPTH 16
#define SP_LZ78Y_MAX_DICTIONARY 65536

int sp_multi_mcw(const uint8_t *s, int64_t n, int alphabet, int64_t *out);
int sp_lag(const uint8_t *s, int64_t n, int64_t *out);
int sp_multi_mmc(const uint8_t *s, int64_t n, int alphabet, int64_t *out);
int sp_lz78y(const uint8_t *s, int64_t n, int alphabet, int64_t *out);

/* 6.3.2 collision walk over a bit string: out = v, sum of t_i, sum of t_i^2. */
int sp_collision(const uint8_t *bits, int64_t n, int64_t *out);

/* Suffix array (a shorter suffix before its extensions) and LCP array (lcp[0] = 0,
 * lcp[i] = common prefix of suffixes sa[i-1] and sa[i]) of a bit string, n < 2^31. */
int sp_suffix_array(const uint8_t *bits, int64_t n, int64_t *sa, int64_t *lcp);

/* LCP intervals of an LCP array of n suffixes (longest value v): for each interval of value l,
 * size c and enclosing value l_parent, max_count[l] = max(max_count[l], c) and
 * diff[l_parent + 1] += C(c, 2), diff[l + 1] -= C(c, 2). Both arrays hold v + 2 entries. */
int sp_lcp_intervals(const int64_t *lcp, int64_t n, int64_t *max_count, int64_t *diff);

/* 6.3.4 step 7: G(z) = z (z sum_{t=d+1}^{blocks} sum_{u=2}^{t-1} a_u + sum_{t=d+1}^{blocks} a_t) / (blocks - d),
 * a_u = log2(u) (1 - z)^(u - 1), for the blocks d+1..blocks; log2_u[k] = log2(k + 2). */
double sp_compression_g(double z, const double *log2_u, int64_t d, int64_t blocks);
