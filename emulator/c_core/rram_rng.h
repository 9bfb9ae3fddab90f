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

/* Standard normal from one 64-bit draw (Box-Muller on two 32-bit halves; tails to about 6.7 sigma). */
static inline double rram_normal(uint64_t key, uint64_t counter) {
    uint64_t x = rram_draw(key, counter);
    double u1 = ((double)(x >> 32) + 0.5) * (1.0 / 4294967296.0);
    double u2 = ((double)(x & 0xFFFFFFFFULL) + 0.5) * (1.0 / 4294967296.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Two independent standard normals from one 64-bit draw (both Box-Muller outputs). */
static inline void rram_normal2(uint64_t key, uint64_t counter, double *z1, double *z2) {
    uint64_t x = rram_draw(key, counter);
    double u1 = ((double)(x >> 32) + 0.5) * (1.0 / 4294967296.0);
    double u2 = ((double)(x & 0xFFFFFFFFULL) + 0.5) * (1.0 / 4294967296.0);
    double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    *z1 = r * cos(th);
    *z2 = r * sin(th);
}

#endif
