/*
 * rram_train.h - pulsed-update kernel for analog training on arrays of soft-bounds devices.
 *
 * Contract
 *   - A tile is rows x cols devices, flat index k = row * cols + col. Rows are the outputs of a
 *     layer (the error side d of an outer-product update), columns its inputs (the x side).
 *   - All memory is owned by the caller: rram_train_tile holds pointers to caller arrays of
 *     rows * cols doubles, and `dev`, the same device parameters packed in float32, 32 bytes per
 *     device (RRAM_TRAIN_DEV_STRIDE floats, filled by rram_train_pack; refill it if a parameter
 *     changes). The kernel only writes w[], the tile's counter and, when the tile gives one, its
 *     scratch. No I/O; one global, the build in use (rram_train_lane_build). An update's working memory
 *     (rram_train_update_scratch bytes, ~5.5 MB of address space for 512 x 512 and batch 64: the trains
 *     of a group of samples, up to 8 MB, the group's per-slot column lists at their longest, 4 bytes per
 *     column, slot and sample, of which only the lists' actual length is touched, each sample's fired
 *     columns with their trains, 16 bytes per column and sample, and its fired rows) is the tile's scratch
 *     when that is large enough, else allocated and freed within the call; one chunk of 1024 pulsed
 *     devices (29 kB of queue and ~75 kB of lanes) is allocated and freed within every call
 *     (RRAM_E_NOMEM if either fails, before any weight changes); a few kB of stack. cols and rows are
 *     bounded by RRAM_TRAIN_MAX_DIM.
 *   - Precision: the device step is computed in float32 (w is read as float32 and stored back as a
 *     double; relative error of a step ~1e-6), like aihwkit's float32 tiles.
 *   - Weights are in normalized device units (the conductance window mapped to about [-1, 1]);
 *     nothing here knows siemens. The Python side (emulator/train.py) converts.
 *   - Deterministic: every random draw is rram_rng.h's counter-based generator (splitmix64 as a
 *     keyed hash). Each call takes one draw of the tile's stream (`key` at `counter`, advanced by
 *     one) as the key of all its draws, each a pure function of (key, train or device, slot or
 *     pulse). The same key, counter and inputs give the same result on every platform (and in the
 *     AVX-512, AVX2 and baseline builds, which execute the same IEEE operations).
 *   - Functions return RRAM_OK (0), RRAM_E_ARG (-1) or RRAM_E_NOMEM (-2) from rram.h; they never
 *     print or abort.
 *
 * Device model (generalized soft bounds, the weak-to-strong-pulse form of the emulator's rram.c)
 *   span = w_max - w_min. An up pulse moves the normalized distance to the upper bound
 *   y = (w_max - w) / span along dy/dm = -y^gamma_up over a pulse of strength m = alpha_up;
 *   a down pulse does the same for y = (w - w_min) / span with alpha_down, gamma_down.
 *   For a weak pulse the step is alpha * span * y^gamma; gamma = 1 is plain soft bounds.
 *   Each step is multiplied by (1 + c2c_sigma * xi), xi standard normal (cycle-to-cycle noise),
 *   as in rram.c (so a noisy step may overshoot a bound slightly; beyond a bound y <= 0 and no
 *   further step goes that way). Device-to-device variability is whatever the caller puts in the
 *   per-device arrays.
 *
 * Stochastic pulse trains (outer-product update, Gokmen & Vlasov 2016)
 *   For each sample b the update w -= lr * d_b x_b^T is realised by trains of `bl` time slots:
 *   column j fires in a slot with probability px_j = min(1, cx |x_j|), row i with
 *   pd_i = min(1, cd |d_i|), where cx * cd = lr / (bl * dw_min), so the expected number of
 *   coincidences bl px pd times the nominal step dw_min equals lr |x_j d_i|. With update management
 *   cx and cd are chosen so that max px = max pd (the two trains share the probability budget).
 *   Every coincidence is one pulse on device (i, j) in direction -sign(d_i x_j).
 *   Each slot is an independent Bernoulli draw with probability floor(p 2^32) / 2^32 (8-bit lanes
 *   of a 64-bit draw, 24 bits of the slot's own draw on a tie), so applied pulses are unbiased: their expectation is
 *   bl * sum px_j pd_i wherever px, pd <= 1. Their spread is not Poisson: the trains are shared
 *   (column j's train serves every row, row i's every column), so the total over a sample has
 *   variance bl * [(V_D + M_D^2)(V_X + M_X^2) - M_D^2 M_X^2] per slot, M and V the mean and
 *   variance of the number of firing rows (D) and columns (X) in a slot: several times the mean.
 *   Cycle-to-cycle draws of an update are keyed per sample and counted per device (pulse p on
 *   device k), so they do not depend on the order in which coincidences are found.
 */
#ifndef RRAM_TRAIN_H
#define RRAM_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#define RRAM_TRAIN_MAX_DIM 4096  /* largest rows or cols of one tile */
#define RRAM_TRAIN_MAX_BL 64     /* longest pulse train */

/* Packed device parameters (float32): dev[RRAM_TRAIN_DEV_STRIDE * k + field], one half per direction of
 * pulses (RRAM_TRAIN_DEV_HALF floats: the bound it moves towards, alpha, gamma - 1 and the span, the same
 * fields at the same offsets), so that a pulse reads one half. */
#define RRAM_TRAIN_DEV_STRIDE 8
#define RRAM_TRAIN_DEV_HALF 4
#define RRAM_TRAIN_DEV_W_MAX 0      /* the up half: */
#define RRAM_TRAIN_DEV_ALPHA_UP 1
#define RRAM_TRAIN_DEV_GM1_UP 2     /* gamma_up - 1 */
#define RRAM_TRAIN_DEV_SPAN 3       /* w_max - w_min (float32) */
#define RRAM_TRAIN_DEV_W_MIN 4      /* the down half: */
#define RRAM_TRAIN_DEV_ALPHA_DOWN 5
#define RRAM_TRAIN_DEV_GM1_DOWN 6   /* gamma_down - 1 */
#define RRAM_TRAIN_DEV_SPAN_DOWN 7  /* the span again */

typedef struct {
    int32_t rows, cols;
    double *w;                 /* [rows*cols] device weights, normalized units (updated in place) */
    const double *w_max;       /* [rows*cols] upper bound of each device */
    const double *w_min;       /* [rows*cols] lower bound, < w_max */
    const double *alpha_up;    /* [rows*cols] pulse strength up (>= 0) */
    const double *alpha_down;  /* [rows*cols] pulse strength down (>= 0) */
    const double *gamma_up;    /* [rows*cols] soft-bounds exponent up (> 0) */
    const double *gamma_down;  /* [rows*cols] soft-bounds exponent down (> 0) */
    const float *dev;          /* [rows*cols*RRAM_TRAIN_DEV_STRIDE] packed float32 copy (rram_train_pack) */
    double c2c_sigma;          /* cycle-to-cycle relative std of a step (>= 0) */
    uint64_t key;              /* random stream key (rram_key of a seed) */
    uint64_t counter;          /* draws consumed so far; advanced by every call */
    void *scratch;             /* optional working memory of rram_train_update, 64-byte aligned, reused (NULL: */
    size_t scratch_bytes;      /* one allocation per call); used when scratch_bytes >= rram_train_update_scratch */
} rram_train_tile;

typedef struct {
    int32_t bl;                /* pulse-train length, 1..RRAM_TRAIN_MAX_BL */
    double lr;                 /* learning rate, weight units per unit of |x d| (> 0) */
    double dw_min;             /* nominal step of one pulse, weight units (> 0) */
    int32_t update_management; /* 1: balance the x and d trains (see above); 0: cx = cd */
} rram_train_update_cfg;

/* Bytes of working memory rram_train_update needs for this tile, batch and bl (0 for invalid arguments).
 * Mostly address space: a sparse update touches a small part of it. Given as t->scratch (kept by the
 * caller, ideally on 2 MiB pages, as PulsedTile does: the walk reads it at random), it is not allocated
 * and freed on every call. */
size_t rram_train_update_scratch(const rram_train_tile *t, int32_t batch, int32_t bl);

/* Key for a tile's stream from a 64-bit seed and a stream number (e.g. the tile's index). */
uint64_t rram_train_key(uint64_t seed, uint64_t stream);

/* Fill dev_out[rows*cols*RRAM_TRAIN_DEV_STRIDE] from the tile's per-device arrays. */
int rram_train_pack(const rram_train_tile *t, float *dev_out);

/* Stochastic-pulse outer-product update w -= lr * sum_b d_b x_b^T over a batch.
 * x[batch*cols], d[batch*rows] (row-major per sample). pulses_out (may be NULL) receives the
 * number of pulses applied. Samples are applied one after another. */
int rram_train_update(rram_train_tile *t, const double *x, const double *d, int32_t batch,
                      const rram_train_update_cfg *cfg, int64_t *pulses_out);

/* The build of the lane functions and the walk's vector helpers in use: 4 (AVX-512), 3 (AVX2) or 0
 * (baseline x86-64, and every other CPU). force 0, 3 or 4 selects that build where this CPU runs it (for
 * comparing builds: every build gives the same bits), -1 only asks; any other value is RRAM_E_ARG.
 * Process-wide; returns the build in effect. */
int rram_train_lane_build(int force);

/* Signed pulse counts on listed devices: n_pulses[c] > 0 up pulses, < 0 down pulses on device
 * idx[c] (0 <= idx < rows*cols), applied one pulse at a time with the device model. */
int rram_train_pulse(rram_train_tile *t, const int64_t *idx, const int32_t *n_pulses, size_t n);

/* Expected (noise-free) step of one pulse from the current weights: up_out[k], down_out[k] >= 0,
 * weight units, every device of the tile. Either output may be NULL. */
int rram_train_steps(const rram_train_tile *t, double *up_out, double *down_out);

#endif
