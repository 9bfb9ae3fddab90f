/*
 * rram_train.c - pulsed updates of soft-bounds device tiles (contract in rram_train.h).
 */
#include "rram_train.h"

#include <math.h>

#include "rram.h"
#include "rram_rng.h"

#define TRAIN_STREAM 0x7A11ULL

uint64_t rram_train_key(uint64_t seed, uint64_t stream) {
    return rram_key(seed, (int64_t)stream, TRAIN_STREAM);
}

/* Normalized distance after one pulse of strength m from distance y to the bound: the integral of
 * dy/dm = -y^gamma (the same law as rram.c's soft_bound, so fitted devices behave as measured). */
static inline double bound_after(double y, double gamma, double m) {
    if (y <= 0.0 || m <= 0.0) return y;
    double gm1 = gamma - 1.0;
    if (fabs(gm1) < 1e-9) return y * exp(-m);
    double base = 1.0 + gm1 * m * pow(y, gm1);
    return base <= 0.0 ? 0.0 : y * pow(base, -1.0 / gm1);
}

/* n pulses (n > 0 up, n < 0 down) on device k; each step carries its own cycle-to-cycle draw. */
static inline void pulse_device(rram_train_tile *t, int64_t k, int32_t n) {
    double w = t->w[k], hi = t->w_max[k], lo = t->w_min[k];
    double span = hi - lo;
    if (span <= 0.0) return;
    int up = n > 0;
    int32_t count = up ? n : -n;
    double a = up ? t->alpha_up[k] : t->alpha_down[k];
    double g = up ? t->gamma_up[k] : t->gamma_down[k];
    for (int32_t p = 0; p < count; ++p) {
        double y = up ? (hi - w) / span : (w - lo) / span;
        double dy = y - bound_after(y, g, a);
        double xi = t->c2c_sigma > 0.0 ? rram_normal(t->key, t->counter++) : 0.0;
        double step = dy * span * (1.0 + t->c2c_sigma * xi);
        /* No clamp at the bounds (as in rram.c): a noisy step may overshoot a bound a little, and
         * beyond it y <= 0 stops further steps that way. */
        w = up ? w + step : w - step;
    }
    t->w[k] = w;
}

/* A train of `bl` slots, each set with probability p (32-bit resolution, two lanes per draw). */
static inline uint64_t train_bits(rram_train_tile *t, double p, int32_t bl) {
    if (!(p > 0.0)) return 0;
    uint64_t full = bl >= 64 ? ~0ULL : ((1ULL << bl) - 1ULL);
    if (p >= 1.0) return full;
    uint64_t thr = (uint64_t)(p * 4294967296.0);
    uint64_t bits = 0;
    for (int32_t s = 0; s < bl; s += 2) {
        uint64_t r = rram_draw(t->key, t->counter++);
        if ((r & 0xFFFFFFFFULL) < thr) bits |= 1ULL << s;
        if (s + 1 < bl && (r >> 32) < thr) bits |= 1ULL << (s + 1);
    }
    return bits;
}

static int tile_ok(const rram_train_tile *t) {
    return t && t->rows > 0 && t->cols > 0 && t->rows <= RRAM_TRAIN_MAX_DIM && t->cols <= RRAM_TRAIN_MAX_DIM &&
           t->w && t->w_max && t->w_min && t->alpha_up && t->alpha_down && t->gamma_up && t->gamma_down &&
           t->c2c_sigma >= 0.0;
}

int rram_train_update(rram_train_tile *t, const double *x, const double *d, int32_t batch,
                      const rram_train_update_cfg *cfg, int64_t *pulses_out) {
    if (!tile_ok(t) || !x || !d || batch < 0 || !cfg || cfg->bl < 1 || cfg->bl > RRAM_TRAIN_MAX_BL ||
        !(cfg->lr > 0.0) || !(cfg->dw_min > 0.0))
        return RRAM_E_ARG;
    const int32_t rows = t->rows, cols = t->cols, bl = cfg->bl;
    uint64_t xbits[RRAM_TRAIN_MAX_DIM], dbits[RRAM_TRAIN_MAX_DIM];
    int32_t active[RRAM_TRAIN_MAX_DIM];
    int8_t xsign[RRAM_TRAIN_MAX_DIM];
    const double k_prod = cfg->lr / ((double)bl * cfg->dw_min);  /* cx * cd */
    int64_t pulses = 0;
    for (int32_t b = 0; b < batch; ++b) {
        const double *xb = x + (size_t)b * cols, *db = d + (size_t)b * rows;
        double xmax = 0.0, dmax = 0.0;
        for (int32_t j = 0; j < cols; ++j) xmax = fmax(xmax, fabs(xb[j]));
        for (int32_t i = 0; i < rows; ++i) dmax = fmax(dmax, fabs(db[i]));
        if (!(xmax > 0.0) || !(dmax > 0.0) || !isfinite(xmax) || !isfinite(dmax)) continue;
        double cx, cd;
        if (cfg->update_management) {
            /* Equal largest firing probability on both sides: cx xmax = cd dmax. */
            cx = sqrt(k_prod * dmax / xmax);
            cd = sqrt(k_prod * xmax / dmax);
        } else {
            cx = cd = sqrt(k_prod);
        }
        int32_t n_active = 0;
        for (int32_t j = 0; j < cols; ++j) {
            uint64_t bits = train_bits(t, fabs(xb[j]) * cx, bl);
            xbits[j] = bits;
            xsign[j] = xb[j] < 0.0 ? -1 : 1;
            if (bits) active[n_active++] = j;
        }
        if (n_active == 0) continue;
        for (int32_t i = 0; i < rows; ++i) dbits[i] = train_bits(t, fabs(db[i]) * cd, bl);
        for (int32_t i = 0; i < rows; ++i) {
            uint64_t di = dbits[i];
            if (!di) continue;
            /* Gradient descent: w moves against sign(d x). */
            int dneg = db[i] < 0.0;
            int64_t base = (int64_t)i * cols;
            for (int32_t a = 0; a < n_active; ++a) {
                int32_t j = active[a];
                int n = __builtin_popcountll(di & xbits[j]);
                if (!n) continue;
                int up = (xsign[j] < 0) != dneg ? 1 : 0;  /* d x < 0  ->  up */
                pulse_device(t, base + j, up ? n : -n);
                pulses += n;
            }
        }
    }
    if (pulses_out) *pulses_out = pulses;
    return RRAM_OK;
}

int rram_train_pulse(rram_train_tile *t, const int64_t *idx, const int32_t *n_pulses, size_t n) {
    if (!tile_ok(t) || (n && (!idx || !n_pulses))) return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (size_t c = 0; c < n; ++c)
        if (idx[c] < 0 || idx[c] >= total) return RRAM_E_ARG;
    for (size_t c = 0; c < n; ++c)
        if (n_pulses[c]) pulse_device(t, idx[c], n_pulses[c]);
    return RRAM_OK;
}

int rram_train_steps(const rram_train_tile *t, double *up_out, double *down_out) {
    if (!tile_ok(t)) return RRAM_E_ARG;
    const int64_t total = (int64_t)t->rows * t->cols;
    for (int64_t k = 0; k < total; ++k) {
        double hi = t->w_max[k], lo = t->w_min[k], span = hi - lo, w = t->w[k];
        double yu = span > 0.0 ? (hi - w) / span : 0.0, yd = span > 0.0 ? (w - lo) / span : 0.0;
        if (up_out) up_out[k] = (yu - bound_after(yu, t->gamma_up[k], t->alpha_up[k])) * span;
        if (down_out) down_out[k] = (yd - bound_after(yd, t->gamma_down[k], t->alpha_down[k])) * span;
    }
    return RRAM_OK;
}
