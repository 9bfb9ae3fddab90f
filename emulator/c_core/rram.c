/*
 * rram.c - cell physics of the 1T1R array: creation, sweeps, pulses, reads, relaxation,
 * closed-loop programming, snapshots. The crossbar solver is in rram_mvm.c.
 */
#include "rram.h"
#include "rram_rng.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Streams of the counter-based generator. */
#define STREAM_DEVICE 0 /* device-to-device parameters, drawn once at creation */
#define STREAM_C2C 1    /* everything drawn during operation */

/* Slots of the device stream (fixed, so adding a parameter never shifts the others). */
enum { D_VFORM, D_IFORM, D_ISAT, D_GMAX, D_GMIN, D_AUP, D_ASYM, D_GUP, D_GDN, D_READ, D_GCC };

#define SNAPSHOT_MAGIC 0x524D4152u /* "RAMR" */
#define SNAPSHOT_VERSION 1u

/* Random batches touch cells all over the array: fetch the state of cells a few iterations ahead. */
#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch((p), 1, 1)
#else
#define PREFETCH(p) ((void)0)
#endif
#define PREFETCH_AHEAD 8

static inline void prefetch_cell(const rram_array *a, const int64_t *idx, size_t c, size_t n, int with_dev) {
    if (c + PREFETCH_AHEAD < n) {
        int64_t k = idx[c + PREFETCH_AHEAD];
        PREFETCH(&a->cell[k]);
        if (with_dev) {
            PREFETCH(&a->dev[k]);
            PREFETCH((const char *)&a->dev[k] + 64);
        }
    }
}

/* ---------------------------------------------------------------- selector */

/* Triode conductance of the selector at gate voltage vg, S (0 when off). */
static double sel_g0(const rram_params *p, double vg) {
    double ov = vg - p->vt;
    return ov > 0.0 ? ov / ((p->vg_ref - p->vt) * p->rds_ref) : 0.0;
}

/* Saturation current of the selector at gate voltage vg, A, before the per-cell scale. */
static double sel_isat(const rram_params *p, double vg) {
    double ov = vg - p->vt;
    return ov > 0.0 ? p->isat_ref * pow(ov / (p->vg_ref - p->vt), p->alpha_sat) : 0.0;
}

/* Drain-source voltage needed to carry current i (>= 0); +inf at or beyond saturation. */
static double sel_vds(double i, double g0, double isat) {
    double r = i / isat, r4 = r * r * r * r;
    if (r4 >= 1.0) return INFINITY;
    return (i / g0) / sqrt(sqrt(1.0 - r4));
}

static double sel_dvds(double i, double g0, double isat) {
    double r = i / isat, r4 = r * r * r * r;
    if (r4 >= 1.0) return INFINITY;
    double q = 1.0 - r4;
    return 1.0 / (g0 * q * sqrt(sqrt(q)));
}

/* ---------------------------------------------------------------- ReRAM transport */

/* Boltzmann constant, eV/K (CODATA 2018). */
#define K_BOLTZMANN 8.617333262e-5

/* Transport conductance at the array's temperature of a formed cell whose state is g (at t_ref), S.
 * The activation energy falls from ea_hrs to ea_lrs as the state moves from the HRS to the LRS (more
 * defects, shallower traps; REF N_e and ΔE of both states), linearly in ln g. */
static double thermal_g(const rram_array *a, double g) {
    if (!a->heated) return g;
    const rram_params *p = &a->p;
    double x = log(g / p->g_hrs_ref) / log(p->g_lrs_ref / p->g_hrs_ref);
    x = x < 0.0 ? 0.0 : (x > 1.0 ? 1.0 : x);
    double ea = p->ea_hrs + (p->ea_lrs - p->ea_hrs) * x;
    return g * exp(-ea * a->inv_kt_shift);
}

/* Current through a pristine ReRAM at cell voltage vc >= 0, A. */
static double cell_i_pristine(const rram_params *p, const rram_device *d, double vc) {
    if (!isfinite(d->v_form)) return p->g_leak * vc;
    return p->g_leak * vc + d->i_form * exp((vc - d->v_form) / p->v_soft);
}

/*
 * Quasi-static operating point of the series circuit at applied |V| = v >= 0: the cell voltage vc with
 * vc + vds(i(vc)) = v. Returns the current (A) and the cell voltage in *vc.
 * Formed cell: safeguarded Newton on vc (one exp per step; `guess` is the previous point's vc, which a
 * 10 mV sweep step moves by less than 10 mV, so two or three steps suffice). Pristine cell: likewise
 * with the soft-breakdown current.
 */
static double solve_formed(const rram_params *p, double nl, double g, double v, double g0, double isat,
                           double guess, double *vc) {
    if (v <= 0.0 || g0 <= 0.0) { *vc = 0.0; return 0.0; }
    double k = g * p->v_ref / sinh(nl * p->v_ref);
    double lo = 0.0, hi = v, x = guess > 0.0 && guess < v ? guess : v * g0 / (g0 + g), i = 0.0;
    for (int it = 0; it < 100; ++it) {
        double e = exp(nl * x), ei = 1.0 / e;
        i = k * 0.5 * (e - ei);
        double r = i / isat, r4 = r * r * r * r, f, df;
        if (r4 >= 1.0) {
            f = INFINITY;
            df = INFINITY;
        } else {
            double q = 1.0 - r4, t = 1.0 / sqrt(sqrt(q));
            f = x + i / g0 * t - v;
            df = 1.0 + t / (g0 * q) * k * nl * 0.5 * (e + ei);
        }
        if (fabs(f) <= 1e-12 * v) break; /* residual far below any measurable voltage */
        if (f > 0.0) hi = x; else lo = x;
        double next = isfinite(f) ? x - f / df : 0.5 * (lo + hi);
        if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
        if (fabs(next - x) <= 1e-15 * v) { x = next; i = k * sinh(nl * x); break; }
        x = next;
    }
    *vc = x;
    return i;
}

static double solve_pristine(const rram_params *p, const rram_device *d, double v, double g0, double isat,
                             double *vc) {
    if (v <= 0.0 || g0 <= 0.0) { *vc = 0.0; return 0.0; }
    /* Far below breakdown the selector drop (< 1 µV) is negligible: skip the solve. */
    double i_full = cell_i_pristine(p, d, v);
    if (i_full < 1e-3 * isat && sel_vds(i_full, g0, isat) < 1e-6) { *vc = v; return i_full; }
    double lo = 0.0, hi = v, x = v;
    for (int it = 0; it < 200; ++it) {
        double i = cell_i_pristine(p, d, x);
        double f = x + sel_vds(i, g0, isat) - v;
        if (f > 0.0) hi = x; else lo = x;
        double di = p->g_leak + (isfinite(d->v_form) ? d->i_form * exp((x - d->v_form) / p->v_soft) / p->v_soft : 0.0);
        double df = 1.0 + sel_dvds(i, g0, isat) * di;
        double next = isfinite(f) && isfinite(df) ? x - f / df : 0.5 * (lo + hi);
        if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
        if (fabs(next - x) <= 1e-12) { x = next; break; }
        x = next;
    }
    *vc = x;
    return cell_i_pristine(p, d, x);
}

/* ---------------------------------------------------------------- switching */

static double width_factor(const rram_params *p, double width) {
    double norm = 1.0 - exp(-p->width_ref / p->tau_switch);
    return (1.0 - exp(-width / p->tau_switch)) / norm * pow(width / p->width_ref, p->width_exp);
}

/* Compliance multiplier of the set bound at gate voltage vg: a filament grown under current
 * compliance has a conductance that rises as a power of the selector's saturation current. */
static double compliance_factor(const rram_params *p, double vg) {
    double ref = sel_isat(p, p->vg_cc_ref), isat = sel_isat(p, vg);
    return isat > 0.0 ? pow(isat / ref, p->cc_exponent) : 0.0;
}

/*
 * Soft bounds integrated over one pulse: the normalized distance y to the bound obeys
 * dy/dm = -y^gamma over the pulse strength m (m = normalized step x amplitude x width factors).
 * Integrating instead of taking one Euler step keeps strong pulses (quasi-static sweep points)
 * from overshooting the bound; for a weak pulse it equals the usual step m * y^gamma.
 */
static double soft_bound(double y0, double gamma, double m) {
    if (y0 <= 0.0 || m <= 0.0) return y0;
    double rate = m * pow(y0, gamma - 1.0);
    if (fabs(gamma - 1.0) < 1e-9) return y0 * exp(-rate);
    double base = 1.0 + (gamma - 1.0) * rate;
    return base <= 0.0 ? 0.0 : y0 * pow(base, -1.0 / (gamma - 1.0));
}

static double onset(const rram_params *p, double mag, double v_th, double v_ref) {
    double t = (mag - v_th) / (v_ref - v_th);
    return p->v_exponent == 2.0 ? t * t : pow(t, p->v_exponent);
}

/*
 * The switching of one pulse or sweep point with signed cell voltage vc (V) on cell k, applied to the
 * cell state *c (the array's own, or a copy: rram_pulse_trace evaluates a pulse without applying it).
 * wf: width factor; comp: compliance factor. Returns 1 if the cell was above threshold.
 * Formed cells switch only once conditioned by their first negative excursion (REF "Forming").
 */
static int switch_cell(const rram_array *a, int64_t k, rram_cell *c, double vc, double wf, double comp) {
    const rram_params *p = &a->p;
    const rram_device *d = &a->dev[k];
    if (c->fault != RRAM_FAULT_NONE || !c->formed) return 0;
    double step;
    if (vc > p->v_th_set) {
        if (!c->conditioned) return 0;
        double s = onset(p, vc, p->v_th_set, p->v_ref_set);
        double vfac = fmin(p->gmax_v_cap, exp(p->k_gmax_v * (vc - p->v_ref_set)));
        double xi = rram_normal(rram_key(a->c2c_seed, k, STREAM_C2C), c->counter++);
        /* Upper bound: the field-dependent window, or what the compliance lets grow, whichever is lower. */
        double gmax = fmin(d->g_max * vfac, d->g_cc * comp);
        double span = gmax - d->g_min;
        double y0 = gmax > c->g ? (gmax - c->g) / span : 0.0;
        step = (y0 - soft_bound(y0, d->gamma_up, d->a_up * s * wf)) * span * (1.0 + p->c2c_sigma * xi);
    } else if (vc < -p->v_th_reset) {
        if (!c->conditioned) {
            /* First negative excursion after forming: defect redistribution in the CMO raises g. */
            c->conditioned = 1;
            c->g = fmin(p->g_ceiling, c->g * p->condition_gain);
            c->t_prog = a->time;
            return 1;
        }
        double mag = -vc;
        double s = onset(p, mag, p->v_th_reset, p->v_ref_reset);
        double gmin = d->g_min * exp(-(mag - p->v_ref_reset) / p->v_w_gmin);
        double span = d->g_max - gmin;
        double y0 = c->g > gmin ? (c->g - gmin) / span : 0.0;
        double xi = rram_normal(rram_key(a->c2c_seed, k, STREAM_C2C), c->counter++);
        step = -(y0 - soft_bound(y0, d->gamma_down, d->a_down * s * wf)) * span * (1.0 + p->c2c_sigma * xi);
    } else {
        return 0;
    }
    double g = c->g + step;
    c->g = g < p->g_floor ? p->g_floor : (g > p->g_ceiling ? p->g_ceiling : g);
    c->t_prog = a->time;
    return 1;
}

/* The switching of one pulse or sweep point applied to cell k of the array itself. */
static int apply_switch(rram_array *a, int64_t k, double vc, double wf, double comp) {
    return switch_cell(a, k, &a->cell[k], vc, wf, comp);
}

/* ---------------------------------------------------------------- creation */

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

static void draw_device(rram_array *a, int64_t k) {
    const rram_params *p = &a->p;
    rram_device *d = &a->dev[k];
    uint64_t key = rram_key(a->seed, k, STREAM_DEVICE);
    double zv = rram_normal(key, D_VFORM);
    /* Correlated draw: cells that leak more before breakdown break down earlier (rho < 0). */
    double zi = p->i_form_v_rho * zv + sqrt(1.0 - p->i_form_v_rho * p->i_form_v_rho) * rram_normal(key, D_IFORM);
    d->v_form = p->v_form_mean + p->v_form_sigma * zv;
    d->i_form = clampd(p->i_form_median * exp(p->i_form_ln_sigma * zi), p->i_form_min, p->i_form_max);
    d->isat_scale = fmax(0.3, 1.0 + p->isat_cv * rram_normal(key, D_ISAT));
    /* Truncate the window draws so that g_min < g_max always holds. */
    d->g_max = p->g_max_mean * fmax(0.35, 1.0 + p->g_max_cv * rram_normal(key, D_GMAX));
    d->g_min = p->g_min_mean * fmax(0.25, 1.0 + p->g_min_cv * rram_normal(key, D_GMIN));
    if (d->g_min > 0.5 * d->g_max) d->g_min = 0.5 * d->g_max;
    d->a_up = p->a_up_median * exp(p->a_up_ln_sigma * rram_normal(key, D_AUP));
    d->a_down = d->a_up * p->asym_median * exp(p->asym_ln_sigma * rram_normal(key, D_ASYM));
    d->gamma_up = fmax(0.2, p->gamma_up_mean + p->gamma_up_sigma * rram_normal(key, D_GUP));
    d->gamma_down = fmax(0.2, p->gamma_down_mean + p->gamma_down_sigma * rram_normal(key, D_GDN));
    d->read_scale = exp(p->read_ln_sigma * rram_normal(key, D_READ));
    d->g_cc = p->g_cc_median * exp(p->g_cc_ln_sigma * rram_normal(key, D_GCC));
}

rram_array *rram_create(int32_t rows, int32_t cols, const rram_params *p, uint64_t seed) {
    if (rows <= 0 || cols <= 0 || p == NULL) return NULL;
    size_t n = (size_t)rows * (size_t)cols;
    rram_array *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->dev = calloc(n, sizeof *a->dev);
    a->cell = calloc(n, sizeof *a->cell);
    if (!a->dev || !a->cell) { rram_free(a); return NULL; }
    a->rows = rows;
    a->cols = cols;
    a->seed = seed;
    a->c2c_seed = rram_mix64(seed ^ 0xC2C0C2C0C2C0C2C0ULL);
    a->p = *p;
    a->temperature = p->t_ref;
    a->inv_kt_shift = 0.0;
    a->nl_t = p->nl;
    a->heated = 0;
    for (size_t k = 0; k < n; ++k) {
        draw_device(a, (int64_t)k);
        a->cell[k].g = p->g_leak;
    }
    return a;
}

void rram_free(rram_array *a) {
    if (!a) return;
    free(a->dev);
    free(a->cell);
    free(a);
}

void rram_reseed(rram_array *a, uint64_t c2c_seed) {
    size_t n = (size_t)a->rows * (size_t)a->cols;
    a->c2c_seed = rram_mix64(c2c_seed ^ 0xC2C0C2C0C2C0C2C0ULL);
    for (size_t k = 0; k < n; ++k) a->cell[k].counter = 0;
}

static int valid_idx(const rram_array *a, const int64_t *idx, size_t n) {
    int64_t total = (int64_t)a->rows * a->cols;
    for (size_t c = 0; c < n; ++c)
        if (idx[c] < 0 || idx[c] >= total) return 0;
    return 1;
}

/* ---------------------------------------------------------------- faults */

int rram_set_fault(rram_array *a, const int64_t *idx, size_t n, int kind) {
    if (kind < RRAM_FAULT_NONE || kind > RRAM_FAULT_NO_FORM || !valid_idx(a, idx, n)) return RRAM_E_ARG;
    for (size_t c = 0; c < n; ++c) {
        int64_t k = idx[c];
        rram_cell *cell = &a->cell[k];
        const rram_device *d = &a->dev[k];
        cell->fault = (uint8_t)kind;
        if (kind == RRAM_FAULT_STUCK_HRS) {
            cell->formed = 1;
            cell->g = 0.5 * d->g_min;
        } else if (kind == RRAM_FAULT_STUCK_LRS) {
            cell->formed = 1;
            cell->g = 1.5 * d->g_max;
        } else if (kind == RRAM_FAULT_NO_FORM) {
            cell->formed = 0;
            cell->g = a->p.g_leak;
        }
    }
    return RRAM_OK;
}

int rram_get_device(const rram_array *a, int64_t k, rram_device *out) {
    if (k < 0 || k >= (int64_t)a->rows * a->cols) return RRAM_E_ARG;
    *out = a->dev[k];
    if (a->cell[k].fault == RRAM_FAULT_NO_FORM) out->v_form = INFINITY;
    return RRAM_OK;
}

/* ---------------------------------------------------------------- sweep */

int rram_sweep(rram_array *a, const int64_t *idx, size_t n, const double *v, size_t npts, double vg,
               double dwell, double *i_out) {
    if (!valid_idx(a, idx, n) || dwell <= 0.0) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    double g0 = sel_g0(p, vg), isat0 = sel_isat(p, vg);
    double wf = width_factor(p, dwell), comp = compliance_factor(p, vg);
    for (size_t c = 0; c < n; ++c) {
        int64_t k = idx[c];
        rram_cell *cell = &a->cell[k];
        rram_device dev = a->dev[k];
        if (cell->fault == RRAM_FAULT_NO_FORM) dev.v_form = INFINITY;
        double isat = isat0 * dev.isat_scale;
        double guess = 0.0; /* the previous point's cell voltage warm-starts the solve */
        for (size_t j = 0; j < npts; ++j) {
            double vj = v[j], mag = fabs(vj), sign = vj < 0.0 ? -1.0 : 1.0, vc, i;
            if (!cell->formed) {
                i = solve_pristine(p, &dev, mag, g0, isat, &vc);
                if (cell->fault == RRAM_FAULT_NONE && vc >= dev.v_form) {
                    /* Forming: the filament grows until the selector limits the current. */
                    cell->formed = 1;
                    cell->conditioned = 0;
                    cell->g = fmin(p->g_ceiling, p->g_formed_frac * dev.g_max);
                    cell->t_prog = a->time;
                    i = solve_formed(p, a->nl_t, thermal_g(a, cell->g), mag, g0, isat, 0.0, &vc);
                }
            } else {
                i = solve_formed(p, a->nl_t, thermal_g(a, cell->g), mag, g0, isat, guess, &vc);
                if (apply_switch(a, k, sign * vc, wf, comp))
                    i = solve_formed(p, a->nl_t, thermal_g(a, cell->g), mag, g0, isat, vc, &vc);
            }
            guess = vc;
            i_out[c * npts + j] = sign * i;
        }
    }
    return RRAM_OK;
}

/* ---------------------------------------------------------------- pulse */

int rram_pulse(rram_array *a, const int64_t *idx, size_t n, const double *v, size_t sv, const double *vg,
               size_t svg, const double *width, size_t sw) {
    if (!valid_idx(a, idx, n)) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    /* Scalar gate and width: hoist the per-call factors out of the loop. */
    double g0_s = sel_g0(p, vg[0]), comp_s = compliance_factor(p, vg[0]);
    double wf_s = width_factor(p, width[0]);
    for (size_t c = 0; c < n; ++c) {
        int64_t k = idx[c];
        prefetch_cell(a, idx, c, n, 1);
        rram_cell *cell = &a->cell[k];
        cell->pulses++;
        if (!cell->formed || cell->fault != RRAM_FAULT_NONE) continue;
        double g0 = svg ? sel_g0(p, vg[c * svg]) : g0_s;
        double comp = svg ? compliance_factor(p, vg[c * svg]) : comp_s;
        double wf = sw ? width_factor(p, width[c * sw]) : wf_s;
        double vv = v[c * sv];
        /* Cell voltage from the small-signal divider with the selector's triode resistance. */
        double vc = g0 > 0.0 ? vv * g0 / (g0 + thermal_g(a, cell->g)) : 0.0;
        apply_switch(a, k, vc, wf, comp);
    }
    return RRAM_OK;
}

int rram_pulse_trace(const rram_array *a, int64_t k, double v, double vg, double width, const double *t,
                     size_t n_t, double *i_out) {
    if (k < 0 || k >= (int64_t)a->rows * a->cols || !(width > 0.0)) return RRAM_E_ARG;
    for (size_t j = 0; j < n_t; ++j)
        if (!(t[j] > 0.0 && t[j] <= width)) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    const rram_cell *cell = &a->cell[k];
    rram_device dev = a->dev[k];
    if (cell->fault == RRAM_FAULT_NO_FORM) dev.v_form = INFINITY;
    double g0 = sel_g0(p, vg), isat = sel_isat(p, vg) * dev.isat_scale, comp = compliance_factor(p, vg);
    double mag = fabs(v), sign = v < 0.0 ? -1.0 : 1.0;
    /* The cell voltage rram_pulse switches with: the small-signal divider at the pre-pulse state. */
    double vc_switch = g0 > 0.0 ? v * g0 / (g0 + cell->g) : 0.0;
    for (size_t j = 0; j < n_t; ++j) {
        rram_cell c = *cell; /* a copy: its counter moves, the array's does not */
        double vc, i;
        if (!c.formed) {
            i = solve_pristine(p, &dev, mag, g0, isat, &vc);
        } else {
            if (c.fault == RRAM_FAULT_NONE) switch_cell(a, k, &c, vc_switch, width_factor(p, t[j]), comp);
            i = solve_formed(p, a->nl_t, thermal_g(a, c.g), mag, g0, isat, 0.0, &vc);
        }
        i_out[j] = sign * i;
    }
    return RRAM_OK;
}

/* ---------------------------------------------------------------- read */

/* Chord factor I / (g V) of a formed cell at |V| = mag: the same for every formed cell at one bias. */
static double chord_factor(const rram_params *p, double nl, double mag) {
    return p->v_ref * sinh(nl * mag) / (sinh(nl * p->v_ref) * mag);
}

/* Noise-free read current of cell k at bias v, gate vg: linear selector in series (read currents
 * are far below saturation), ReRAM chord conductance at the full bias. chord = chord_factor(|v|). */
static double read_current(const rram_array *a, int64_t k, double v, double g0, double chord) {
    const rram_params *p = &a->p;
    const rram_cell *c = &a->cell[k];
    double mag = fabs(v);
    if (mag == 0.0 || g0 <= 0.0) return 0.0;
    double gc;
    if (c->formed) {
        gc = thermal_g(a, c->g) * chord;
    } else {
        rram_device d = a->dev[k];
        if (c->fault == RRAM_FAULT_NO_FORM) d.v_form = INFINITY;
        gc = cell_i_pristine(p, &d, mag) / mag;
    }
    double i = mag / (1.0 / gc + 1.0 / g0);
    return v < 0.0 ? -i : i;
}

int rram_read(rram_array *a, const int64_t *idx, size_t n, double v, double vg, int noisy, double *i_out) {
    if (!valid_idx(a, idx, n)) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    double g0 = sel_g0(p, vg), mag = fabs(v), chord = mag > 0.0 ? chord_factor(p, a->nl_t, mag) : 0.0;
    for (size_t c = 0; c < n; ++c) {
        int64_t k = idx[c];
        prefetch_cell(a, idx, c, n, noisy);
        double i = read_current(a, k, v, g0, chord);
        if (noisy && mag > 0.0) {
            rram_cell *cell = &a->cell[k];
            double g = fabs(i) / mag;
            double sigma = p->read_sigma_abs * a->dev[k].read_scale * g / (g + p->read_g_knee);
            double xi = rram_normal(rram_key(a->c2c_seed, k, STREAM_C2C), cell->counter++);
            i += v * sigma * xi;
        }
        i_out[c] = i;
    }
    return RRAM_OK;
}

int rram_conductance_matrix(const rram_array *a, double v, double vg, double *g_out) {
    if (v == 0.0) return RRAM_E_ARG;
    double g0 = sel_g0(&a->p, vg), chord = chord_factor(&a->p, a->nl_t, fabs(v));
    int64_t total = (int64_t)a->rows * a->cols;
    for (int64_t k = 0; k < total; ++k) g_out[k] = read_current(a, k, v, g0, chord) / v;
    return RRAM_OK;
}

/* ---------------------------------------------------------------- temperature */

int rram_set_temperature(rram_array *a, double temperature) {
    if (!(temperature > 0.0) || !isfinite(temperature)) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    a->temperature = temperature;
    a->heated = temperature != p->t_ref;
    a->inv_kt_shift = a->heated ? (1.0 / temperature - 1.0 / p->t_ref) / K_BOLTZMANN : 0.0;
    a->nl_t = a->heated ? p->nl * (p->t_ref / temperature) : p->nl;
    return RRAM_OK;
}

/* ---------------------------------------------------------------- relaxation */

int rram_advance(rram_array *a, double dt) {
    if (!(dt >= 0.0) || !isfinite(dt)) return RRAM_E_ARG;
    const rram_params *p = &a->p;
    int64_t total = (int64_t)a->rows * a->cols;
    double t_new = a->time + dt;
    /* Arrhenius acceleration: dt at the temperature ages a cell as dt * af at t_ref. The cell's t_prog
     * is moved back so that its age stays t - t_prog (the state a snapshot holds). */
    double af = a->heated ? exp(-p->relax_ea * a->inv_kt_shift) : 1.0;
    for (int64_t k = 0; k < total && dt > 0.0; ++k) {
        rram_cell *c = &a->cell[k];
        if (!c->formed || c->fault != RRAM_FAULT_NONE) continue;
        double u1, u2;
        if (a->heated) {
            double age1 = a->time - c->t_prog, age2 = age1 + dt * af;
            u1 = log10(1.0 + age1 / p->relax_tau);
            u2 = log10(1.0 + age2 / p->relax_tau);
            c->t_prog = t_new - age2;
        } else {
            u1 = log10(1.0 + (a->time - c->t_prog) / p->relax_tau);
            u2 = log10(1.0 + (t_new - c->t_prog) / p->relax_tau);
        }
        double xi = rram_normal(rram_key(a->c2c_seed, k, STREAM_C2C), c->counter++);
        /* Independent Gaussian increments with variance growing as u^2 keep std = s * u exactly. */
        double g = c->g + p->relax_mean_per_decade * (u2 - u1) +
                   p->relax_std_per_decade * sqrt(u2 * u2 - u1 * u1) * xi;
        c->g = g < p->g_floor ? p->g_floor : (g > p->g_ceiling ? p->g_ceiling : g);
    }
    a->time = t_new;
    return RRAM_OK;
}

/* ---------------------------------------------------------------- closed loop */

int rram_program(rram_array *a, const int64_t *idx, size_t n, const double *target, const double *v_set,
                 const double *v_reset, const rram_program_cfg *cfg, double *g_out, int32_t *iter_out,
                 uint8_t *conv_out) {
    if (!valid_idx(a, idx, n) || cfg->tol < 0.0 || cfg->max_iter < 1 || cfg->v_read == 0.0) return RRAM_E_ARG;
    for (size_t c = 0; c < n; ++c) {
        int64_t k = idx[c];
        double g = 0.0;
        int32_t pulses = 0, run = 0, flips = 0, last = 0;
        uint8_t conv = 0;
        double amp_set = v_set[c], amp_reset = v_reset[c];
        for (int32_t it = 0; it < cfg->max_iter; ++it) {
            double i;
            rram_read(a, &k, 1, cfg->v_read, cfg->vg_read, 1, &i);
            g = i / cfg->v_read;
            double err = g - target[c];
            if (fabs(err) <= cfg->tol * target[c]) { conv = 1; break; }
            if (it == cfg->max_iter - 1) break; /* the last verify read is not followed by a pulse */
            int dir = err < 0.0 ? 1 : -1;
            if (cfg->scheme == RRAM_SCHEME_INCREMENTAL) {
                if (last != 0 && dir != last) {
                    if (cfg->max_flips > 0 && ++flips > cfg->max_flips) break;
                    run = 0;
                    amp_set = v_set[c];
                    amp_reset = v_reset[c];
                } else if (run > 0) {
                    if (dir > 0) amp_set = fmin(amp_set + cfg->v_step_set, cfg->v_stop_set);
                    else amp_reset = fmax(amp_reset - cfg->v_step_reset, cfg->v_stop_reset);
                }
                if (cfg->max_per_polarity > 0 && run >= cfg->max_per_polarity) break;
            }
            double amp = dir > 0 ? amp_set : amp_reset;
            double gate = dir > 0 ? cfg->vg_set : cfg->vg_reset;
            rram_pulse(a, &k, 1, &amp, 0, &gate, 0, &cfg->width, 0);
            pulses++;
            run = (dir == last) ? run + 1 : 1;
            last = dir;
        }
        g_out[c] = g;
        iter_out[c] = pulses;
        conv_out[c] = conv;
    }
    return RRAM_OK;
}

/* ---------------------------------------------------------------- snapshot */

typedef struct {
    uint32_t magic, version;
    int32_t rows, cols;
    uint64_t seed, c2c_seed;
    double time;
} snap_header;

size_t rram_snapshot_size(const rram_array *a) {
    return sizeof(snap_header) + (size_t)a->rows * a->cols * sizeof(rram_cell);
}

int rram_snapshot(const rram_array *a, uint8_t *buf, size_t len) {
    if (len != rram_snapshot_size(a)) return RRAM_E_SIZE;
    snap_header h = {SNAPSHOT_MAGIC, SNAPSHOT_VERSION, a->rows, a->cols, a->seed, a->c2c_seed, a->time};
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, a->cell, len - sizeof h);
    return RRAM_OK;
}

int rram_restore(rram_array *a, const uint8_t *buf, size_t len) {
    snap_header h;
    if (len != rram_snapshot_size(a)) return RRAM_E_SIZE;
    memcpy(&h, buf, sizeof h);
    if (h.magic != SNAPSHOT_MAGIC || h.version != SNAPSHOT_VERSION || h.rows != a->rows || h.cols != a->cols ||
        h.seed != a->seed)
        return RRAM_E_SIZE;
    a->c2c_seed = h.c2c_seed;
    a->time = h.time;
    memcpy(a->cell, buf + sizeof h, len - sizeof h);
    return RRAM_OK;
}
