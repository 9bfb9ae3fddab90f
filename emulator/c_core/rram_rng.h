/*
 * rram_rng.h - counter-based random draws (splitmix64 finalizer as a keyed hash).
 *
 * A draw is a pure function of (key, counter): key = hash(seed, cell, stream). This is what makes
 * a cell's history independent of the order in which cells are visited. The splitmix64 mixing
 * constants are those of Steele, Lea & Flood, "Fast splittable pseudorandom number generators"
 * (OOPSLA 2014); the output is identical on every platform with 64-bit unsigned arithmetic.
 */
#ifndef RRAM_RNG_H
#define RRAM_RNG_H

#include <math.h>
#include <stdint.h>

#define RRAM_GOLDEN 0x9E3779B97F4A7C15ULL

static inline uint64_t rram_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Key of the stream `stream` of cell `cell` under `seed`. */
static inline uint64_t rram_key(uint64_t seed, int64_t cell, uint64_t stream) {
    return rram_mix64(seed ^ rram_mix64((uint64_t)cell * RRAM_GOLDEN + stream * 0xD1B54A32D192ED03ULL + 1));
}

static inline uint64_t rram_draw(uint64_t key, uint64_t counter) {
    return rram_mix64(key + (counter + 1) * RRAM_GOLDEN);
}

/* Uniform in the open interval (0, 1), 53-bit resolution. */
static inline double rram_uniform(uint64_t key, uint64_t counter) {
    return ((double)(rram_draw(key, counter) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/*
 * Standard normal by inversion of the CDF: P. J. Acklam's rational approximation (relative error
 * below 1.2e-9), on a 53-bit uniform. One draw per normal, no rejection, and the central 95 % of
 * draws need no transcendental call, which is what keeps a pulse or a read cheap.
 */
static inline double rram_inv_normal(double p) {
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                3.754408661907416e+00};
    const double p_low = 0.02425;
    if (p > p_low && p < 1.0 - p_low) {
        double q = p - 0.5, r = q * q;
        return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
               (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    }
    double q = sqrt(-2.0 * log(p < 0.5 ? p : 1.0 - p));
    double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
               ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    return p < 0.5 ? x : -x;
}

static inline double rram_normal(uint64_t key, uint64_t counter) {
    return rram_inv_normal(rram_uniform(key, counter));
}

#endif
