/*
 * rram.h - physics model of a 1T1R ReRAM crossbar array (CMO/HfOx class).
 *
 * Contract
 *   - All state lives in one rram_array struct owned by the caller (rram_create / rram_free).
 *     No globals, no I/O, no allocation after creation except in rram_mvm (scratch).
 *   - Units are SI: volts, amperes, siemens, seconds.
 *   - Cells are addressed by a flat index  k = row * cols + col,  0 <= k < rows * cols.
 *     Callers validate indices; the model asserts them in debug builds and clamps nothing.
 *   - Deterministic: every random draw comes from a counter-based generator keyed by
 *     (seed, cell, stream) and a per-cell counter. What a cell experiences depends only on the
 *     seed and the operations applied to that cell, never on how cells are batched.
 *   - Functions return RRAM_OK or a negative RRAM_E* code; they do not print or abort.
 *
 * Cell model (see docs/emulator.md for the derivation and emulator/presets.py for sources)
 *   Selector: NMOS in series, gate voltage vg. Triode conductance g0 = (vg - vt) / ((vg_ref - vt) rds_ref),
 *     saturation current isat = isat_ref ((vg - vt)/(vg_ref - vt))^alpha_sat,
 *     I(Vds) = g0 Vds / (1 + (g0 Vds / isat)^4)^(1/4)  (smooth triode-to-saturation).
 *   ReRAM, formed: state g = conductance at the reference bias v_ref (0.2 V); hopping (sinh) I-V
 *     I(Vc) = g v_ref sinh(nl Vc) / sinh(nl v_ref).
 *   ReRAM, pristine: leakage g_leak Vc plus soft-breakdown current
 *     i_form exp((Vc - v_form) / v_soft); it forms when Vc reaches v_form.
 *   Pulsed switching: generalized soft bounds with a threshold in the cell voltage, amplitude and
 *     compliance dependent bounds, width dependence and multiplicative cycle-to-cycle noise.
 *   Relaxation: after the last programming pulse, mean and spread of g change linearly in
 *     u(t) = log10(1 + t / tau) (time-changed Gaussian increments, so any sampling of the clock
 *     gives the same statistics).
 *   Read noise: Gaussian, sigma = read_sigma_abs * g / (g + read_g_knee) * per-cell scale.
 *   Temperature T (K, rram_set_temperature; t_ref at creation): a formed cell's transport conductance is
 *     g * exp(-Ea(g) / k_B * (1/T - 1/t_ref)), Ea(g) interpolated linearly in ln g between ea_hrs at
 *     g_hrs_ref and ea_lrs at g_lrs_ref (clamped), and the sinh non-linearity scales as t_ref / T;
 *     relaxation runs on an effective time dt * exp(relax_ea / k_B * (1/t_ref - 1/T)). The state g stays
 *     the conductance at v_ref and t_ref. At T = t_ref nothing of this is computed (bit-identical).
 */
#ifndef RRAM_H
#define RRAM_H

#include <stddef.h>
#include <stdint.h>

#define RRAM_OK 0
#define RRAM_E_ARG (-1)      /* argument out of range (caller should have validated) */
#define RRAM_E_NOMEM (-2)    /* allocation failed */
#define RRAM_E_SIZE (-3)     /* snapshot blob has the wrong size or version */
#define RRAM_E_NOCONV (-4)   /* iterative solver did not converge */

/* Fault kinds (rram_set_fault). */
#define RRAM_FAULT_NONE 0
#define RRAM_FAULT_STUCK_HRS 1  /* conductance fixed low; pulses and sweeps do nothing */
#define RRAM_FAULT_STUCK_LRS 2  /* conductance fixed high */
#define RRAM_FAULT_NO_FORM 3    /* never forms, stays insulating */

/* Closed-loop schemes (rram_program). */
#define RRAM_SCHEME_IDENTICAL 0
#define RRAM_SCHEME_INCREMENTAL 1

/* Device preset: means and spreads of every physical parameter. Filled from Python
 * (emulator/presets.py documents the source of each value). */
typedef struct {
    /* selector (NMOS) */
    double vt;            /* threshold voltage, V */
    double vg_ref;        /* gate voltage at which rds_ref and isat_ref are given, V */
    double rds_ref;       /* triode resistance at vg_ref, ohm */
    double isat_ref;      /* saturation current at vg_ref, A */
    double alpha_sat;     /* alpha-power law exponent of isat(vg) */
    double isat_cv;       /* device-to-device relative spread of isat (threshold variation) */
    /* transport */
    double v_ref;         /* bias at which the state conductance g is defined, V */
    double nl;            /* hopping non-linearity of sinh(nl V), 1/V */
    double g_leak;        /* pristine leakage conductance, S */
    double g_floor;       /* lowest conductance a formed cell can reach, S */
    double g_ceiling;     /* highest conductance a formed cell can reach, S */
    /* forming */
    double v_form_mean;   /* ReRAM forming voltage mean, V */
    double v_form_sigma;  /* ReRAM forming voltage std, V */
    double i_form_median; /* pre-breakdown current at forming, median, A */
    double i_form_ln_sigma; /* lognormal sigma of i_form */
    double i_form_v_rho;  /* correlation of ln(i_form) with v_form */
    double i_form_min;    /* clip of i_form, A */
    double i_form_max;    /* clip of i_form, A */
    double v_soft;        /* soft-breakdown slope of the pristine current, V per e-fold */
    double g_formed_frac; /* conductance right after forming, as a fraction of the cell's g_max */
    double condition_gain;/* factor by which the first negative sweep raises g (CMO 5 -> 37 S/cm) */
    /* pulsed switching window at the reference pulses */
    double g_max_mean, g_max_cv;     /* upper bound at v_ref_set, vg_ref_set, S */
    double g_min_mean, g_min_cv;     /* lower bound at v_ref_reset, S */
    double a_up_median, a_up_ln_sigma; /* normalized up step at the reference set pulse */
    double asym_median, asym_ln_sigma; /* a_down / a_up */
    double gamma_up_mean, gamma_up_sigma;     /* soft-bounds exponent, up */
    double gamma_down_mean, gamma_down_sigma; /* soft-bounds exponent, down */
    double c2c_sigma;     /* cycle-to-cycle relative std of a step */
    double v_th_set, v_ref_set;     /* set threshold and reference amplitude (cell voltage), V */
    double v_th_reset, v_ref_reset; /* reset threshold and reference amplitude (magnitudes), V */
    double v_exponent;    /* step ~ ((|Vc| - v_th) / (v_ref - v_th))^v_exponent */
    double k_gmax_v;      /* upper bound ~ exp(k_gmax_v (Vc - v_ref_set)), 1/V */
    double gmax_v_cap;    /* largest amplitude factor of the upper bound */
    double v_w_gmin;      /* lower bound falls by e per v_w_gmin beyond v_ref_reset, V */
    double g_cc_median, g_cc_ln_sigma; /* compliance-limited set conductance at vg_cc_ref, S */
    double vg_cc_ref;     /* gate voltage at which g_cc is given, V */
    double cc_exponent;   /* g_cc ~ isat(vg)^cc_exponent */
    double tau_switch;    /* switching time constant (shortest effective pulses), s */
    double width_ref;     /* reference pulse width, s */
    double width_exp;     /* step ~ (width / width_ref)^width_exp beyond tau_switch */
    /* read noise */
    double read_sigma_abs;  /* S */
    double read_g_knee;     /* S */
    double read_ln_sigma;   /* device-to-device lognormal spread of the noise scale */
    /* relaxation */
    double relax_tau;             /* s, u = log10(1 + t / relax_tau) */
    double relax_mean_per_decade; /* S per unit of u */
    double relax_std_per_decade;  /* S per unit of u */
    /* temperature (docs/emulator.md "Temperature"); at t_ref every figure is the room-temperature one */
    double t_ref;         /* temperature at which every other parameter is given, K */
    double ea_lrs;        /* activation energy of the hopping transport at g = g_lrs_ref, eV */
    double ea_hrs;        /* activation energy at g = g_hrs_ref, eV (linear in ln g between, clamped) */
    double g_lrs_ref;     /* state conductance of the reference LRS, S */
    double g_hrs_ref;     /* state conductance of the reference HRS, S */
    double relax_ea;      /* activation energy of relaxation (Arrhenius time acceleration), eV */
} rram_params;

/* Per-cell device parameters drawn at creation (device-to-device variability). */
typedef struct {
    double v_form, i_form, isat_scale;
    double g_max, g_min, a_up, a_down, gamma_up, gamma_down;
    double read_scale, g_cc;
} rram_device;

/* Per-cell dynamic state. */
typedef struct {
    double g;          /* state conductance at v_ref, S (formed cells) */
    double t_prog;     /* virtual time of the last programming event, s */
    uint64_t counter;  /* draws taken from this cell's cycle-to-cycle stream */
    uint64_t pulses;   /* pulses received (rram_pulse calls naming the cell) */
    uint8_t formed;
    uint8_t conditioned;
    uint8_t fault;
    uint8_t pad[5];
} rram_cell;

typedef struct {
    int32_t rows, cols;
    uint64_t seed;       /* device-to-device parameters */
    uint64_t c2c_seed;   /* cycle-to-cycle stream (rram_reseed changes it) */
    double time;         /* virtual clock, s */
    double temperature;  /* cell temperature, K (= p.t_ref at creation; rram_set_temperature) */
    double inv_kt_shift; /* (1/temperature - 1/t_ref) / k_B, 1/eV (0 at t_ref) */
    double nl_t;         /* hopping non-linearity at the temperature, 1/V (nl * t_ref / temperature) */
    int32_t heated;      /* temperature != t_ref: the thermal factors apply */
    int32_t pad_t;
    rram_params p;
    rram_device *dev;    /* rows * cols */
    rram_cell *cell;     /* rows * cols */
} rram_array;

/* Create an array; device parameters are drawn from `seed`. Returns NULL on allocation failure. */
rram_array *rram_create(int32_t rows, int32_t cols, const rram_params *p, uint64_t seed);
void rram_free(rram_array *a);

/* Replace the cycle-to-cycle stream seed and reset the per-cell counters. */
void rram_reseed(rram_array *a, uint64_t c2c_seed);

/* Quasi-static sweep: for each listed cell, apply v[0..npts-1] (V, top electrode; source grounded)
 * with gate vg (V), dwelling `dwell` s per point. Forms pristine cells when the cell voltage reaches
 * their forming voltage; switches formed cells. i_out[c * npts + j] receives the current (A) at
 * point j of cell c, after any switching at that point. Advances nothing on the virtual clock;
 * a cell that switched counts as programmed at the current time. */
int rram_sweep(rram_array *a, const int64_t *idx, size_t n, const double *v, size_t npts,
               double vg, double dwell, double *i_out);

/* One rectangular pulse per listed cell. v, vg, width are arrays read with the given strides
 * (stride 0 broadcasts a scalar). Sub-threshold pulses leave the state unchanged. */
int rram_pulse(rram_array *a, const int64_t *idx, size_t n, const double *v, size_t sv,
               const double *vg, size_t svg, const double *width, size_t sw);

/* Transient of one pulse without applying it: the current (A) through cell k (row-major index) at the
 * instants t[0..n_t-1] (s, each in (0, width]) of a rectangular pulse of v (V), gate vg (V), `width` s,
 * from the cell's present state. The state at time t is the one a pulse of width t would leave, drawn
 * with the cell's next cycle-to-cycle number (read, not taken), so the value at t = width is the current
 * of the state rram_pulse with the same arguments then leaves. Full series I-V (selector saturation
 * included). Changes nothing; call it before rram_pulse. */
int rram_pulse_trace(const rram_array *a, int64_t k, double v, double vg, double width, const double *t,
                     size_t n_t, double *i_out);

/* Current (A) through each listed 1T1R cell at bias v (V) and gate vg (V), with read noise
 * if `noisy` (noise takes one draw per cell). Out g_out may be NULL; if given, receives I / v. */
int rram_read(rram_array *a, const int64_t *idx, size_t n, double v, double vg, int noisy,
              double *i_out);

/* Noise-free 1T1R conductance I/V at bias v, gate vg, of every cell into g_out[rows*cols], S. */
int rram_conductance_matrix(const rram_array *a, double v, double vg, double *g_out);

/* Set the cell temperature, K (finite, > 0). Takes no draw and changes no state: reads, sweeps and
 * pulses see the transport at this temperature, relaxation during rram_advance runs accelerated.
 * Not part of a snapshot (it is the chuck's, not the array's). */
int rram_set_temperature(rram_array *a, double temperature);

/* Advance the virtual clock by dt >= 0 s; formed cells relax. */
int rram_advance(rram_array *a, double dt);

/* Closed-loop program-and-verify per cell (SET_TARGET_G), run to completion for each cell in turn.
 * Loop: read (v_read, vg_read, noisy); if |g - target| <= tol * target stop (converged);
 * else one set pulse if g < target, one reset pulse if g > target.
 * IDENTICAL: fixed amplitudes v_set[c], v_reset[c] (per cell, V; v_reset < 0).
 * INCREMENTAL: amplitude starts at v_set[c] / v_reset[c], grows by v_step_set / v_step_reset per
 *   consecutive pulse of one polarity up to v_stop_set / v_stop_reset, restarts on a polarity flip;
 *   at most max_per_polarity pulses in a row and max_flips flips.
 * max_iter bounds the number of verify reads per cell. Outputs: g_out (last verify read, S),
 * iter_out (pulses applied), conv_out (1 if converged). */
typedef struct {
    int scheme;
    double tol;            /* relative acceptance, e.g. 0.02 */
    int32_t max_iter;      /* bound on verify reads per cell */
    double vg_set, vg_reset, width, v_read, vg_read;
    double v_step_set, v_step_reset, v_stop_set, v_stop_reset;  /* incremental only */
    int32_t max_per_polarity, max_flips;                        /* incremental only; <=0: none */
} rram_program_cfg;

int rram_program(rram_array *a, const int64_t *idx, size_t n, const double *target,
                 const double *v_set, const double *v_reset, const rram_program_cfg *cfg,
                 double *g_out, int32_t *iter_out, uint8_t *conv_out);

/* Crossbar MVM with wire resistance. Rows are driven at column 0's end through one segment,
 * columns are held at virtual ground at the last row's end through one segment; every segment
 * between neighbouring cells has r_row (row wires) or r_col (column wires) ohms. Cells are
 * linear conductances g[rows*cols] (S) (the non-linear I-V linearized at the read bias).
 * v_in[b*rows + i]: row voltages of vector b (V); i_out[b*cols + j]: column currents (A).
 * Exact nodal analysis: the row layer is eliminated and the Schur complement system for the column
 * nodes is solved by conjugate gradients preconditioned with the column lines, to relative residual tol.
 * r_row = r_col = 0 reduces to i = G^T v. Returns iterations of the worst vector, or RRAM_E_*. */
int rram_mvm(int32_t rows, int32_t cols, const double *g, const double *v_in, size_t batch,
             double r_row, double r_col, double tol, int32_t max_iter, double *i_out);

/* Snapshot: size in bytes, and copy out / in (same rows, cols required for restore). */
size_t rram_snapshot_size(const rram_array *a);
int rram_snapshot(const rram_array *a, uint8_t *buf, size_t len);
int rram_restore(rram_array *a, const uint8_t *buf, size_t len);

int rram_set_fault(rram_array *a, const int64_t *idx, size_t n, int kind);

/* Device parameters of one cell (for tests and model fitting). */
int rram_get_device(const rram_array *a, int64_t k, rram_device *out);

#endif
