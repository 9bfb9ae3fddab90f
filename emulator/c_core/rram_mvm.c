/*
 * rram_mvm.c - crossbar matrix-vector multiplication with wire resistance (nodal analysis).
 *
 * Unknowns: the voltage of every row-wire node vr[i*C+j] and column-wire node vc[i*C+j].
 *   row node (i,j):  gr (vr - left) + gr (vr - right) [j < C-1] + g_ij (vr - vc) = 0,
 *                    left of j = 0 is the row driver at v_in[i] through one segment;
 *   col node (i,j):  gc (vc - up) [i > 0] + gc (vc - down) + g_ij (vc - vr) = 0,
 *                    below i = R-1 is the column's virtual ground through one segment.
 * Column current out = gc * vc[(R-1)*C + j].
 * The system is symmetric positive definite. Preconditioner: exact solves of every row line and
 * every column line (tridiagonal, Thomas algorithm) - the wires dominate the diagonal, so the
 * remaining coupling is only through the cells. With r_row = 0 (or r_col = 0) one set of lines is
 * an ideal conductor and the other decouples into independent tridiagonal systems, solved directly.
 */
#include "rram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Factor a tridiagonal SPD system with diagonal d[0..n-1] and constant off-diagonal -w.
 * Stores inverse pivots in inv[] and modified super-diagonal in cp[]. */
static void thomas_factor(size_t n, const double *d, double w, double *cp, double *inv) {
    double prev = 0.0;
    for (size_t k = 0; k < n; ++k) {
        double piv = d[k] - (k ? (-w) * prev : 0.0);
        inv[k] = 1.0 / piv;
        prev = (-w) * inv[k];
        cp[k] = prev;
    }
}

/* Solve in place with strided access (stride s between consecutive unknowns). */
static void thomas_solve(size_t n, double w, const double *cp, const double *inv, double *x, size_t s) {
    double prev = 0.0;
    for (size_t k = 0; k < n; ++k) {
        prev = (x[k * s] + w * prev) * inv[k];
        x[k * s] = prev;
    }
    for (size_t k = n - 1; k-- > 0;) x[k * s] -= cp[k] * x[(k + 1) * s];
}

static int mvm_ideal(int32_t R, int32_t C, const double *g, const double *v, size_t batch, double *out) {
    for (size_t b = 0; b < batch; ++b) {
        double *o = out + b * C;
        memset(o, 0, sizeof(double) * C);
        for (int32_t i = 0; i < R; ++i) {
            double vi = v[b * R + i];
            const double *gi = g + (size_t)i * C;
            for (int32_t j = 0; j < C; ++j) o[j] += gi[j] * vi;
        }
    }
    return 0;
}

/* r_row = 0: rows are equipotential at v_in; each column is a tridiagonal system. */
static int mvm_ideal_rows(int32_t R, int32_t C, const double *g, const double *v, size_t batch, double gc,
                          double *out) {
    double *d = malloc(sizeof(double) * R * 3);
    if (!d) return RRAM_E_NOMEM;
    double *cp = d + R, *inv = d + 2 * R;
    double *x = malloc(sizeof(double) * R);
    if (!x) { free(d); return RRAM_E_NOMEM; }
    for (int32_t j = 0; j < C; ++j) {
        for (int32_t i = 0; i < R; ++i) d[i] = (i > 0 ? gc : 0.0) + gc + g[(size_t)i * C + j];
        thomas_factor(R, d, gc, cp, inv);
        for (size_t b = 0; b < batch; ++b) {
            for (int32_t i = 0; i < R; ++i) x[i] = g[(size_t)i * C + j] * v[b * R + i];
            thomas_solve(R, gc, cp, inv, x, 1);
            out[b * C + j] = gc * x[R - 1];
        }
    }
    free(x);
    free(d);
    return 0;
}

/* r_col = 0: columns are at ground; each row is a tridiagonal system, currents sum down columns. */
static int mvm_ideal_cols(int32_t R, int32_t C, const double *g, const double *v, size_t batch, double gr,
                          double *out) {
    double *d = malloc(sizeof(double) * C * 4);
    if (!d) return RRAM_E_NOMEM;
    double *cp = d + C, *inv = d + 2 * C, *x = d + 3 * C;
    memset(out, 0, sizeof(double) * C * batch);
    for (int32_t i = 0; i < R; ++i) {
        const double *gi = g + (size_t)i * C;
        for (int32_t j = 0; j < C; ++j) d[j] = gr + (j < C - 1 ? gr : 0.0) + gi[j];
        thomas_factor(C, d, gr, cp, inv);
        for (size_t b = 0; b < batch; ++b) {
            memset(x, 0, sizeof(double) * C);
            x[0] = gr * v[b * R + i];
            thomas_solve(C, gr, cp, inv, x, 1);
            for (int32_t j = 0; j < C; ++j) out[b * C + j] += gi[j] * x[j];
        }
    }
    free(d);
    return 0;
}

typedef struct {
    int32_t R, C;
    size_t N;
    const double *g;
    double gr, gc;
    double *rcp, *rinv; /* row-line factors, R x C */
    double *ccp, *cinv; /* column-line factors, C x R (column-major per line) */
} crossbar;

/* y = A x */
static void apply_A(const crossbar *cb, const double *x, double *y) {
    int32_t R = cb->R, C = cb->C;
    size_t N = cb->N;
    const double *xr = x, *xc = x + N;
    double *yr = y, *yc = y + N;
    double gr = cb->gr, gc = cb->gc;
    for (int32_t i = 0; i < R; ++i) {
        size_t o = (size_t)i * C;
        for (int32_t j = 0; j < C; ++j) {
            size_t k = o + j;
            double gij = cb->g[k];
            double dr = xr[k] - xc[k];
            double vr = (2.0 * gr) * xr[k] - (j > 0 ? gr * xr[k - 1] : 0.0) - (j < C - 1 ? gr * xr[k + 1] : gr * xr[k]);
            yr[k] = vr + gij * dr;
            double vc = (i > 0 ? gc * (xc[k] - xc[k - C]) : 0.0) + gc * xc[k] - (i < R - 1 ? gc * xc[k + C] : 0.0);
            yc[k] = vc - gij * dr;
        }
    }
}

/* z = M^{-1} r: exact solve of every row line and every column line. */
static void apply_M(const crossbar *cb, const double *r, double *z) {
    int32_t R = cb->R, C = cb->C;
    size_t N = cb->N;
    memcpy(z, r, sizeof(double) * 2 * N);
    for (int32_t i = 0; i < R; ++i)
        thomas_solve(C, cb->gr, cb->rcp + (size_t)i * C, cb->rinv + (size_t)i * C, z + (size_t)i * C, 1);
    for (int32_t j = 0; j < C; ++j)
        thomas_solve(R, cb->gc, cb->ccp + (size_t)j * R, cb->cinv + (size_t)j * R, z + N + j, C);
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t k = 0; k < n; ++k) s += a[k] * b[k];
    return s;
}

int rram_mvm(int32_t R, int32_t C, const double *g, const double *v_in, size_t batch, double r_row,
             double r_col, double tol, int32_t max_iter, double *i_out) {
    if (R <= 0 || C <= 0 || r_row < 0.0 || r_col < 0.0 || !(tol > 0.0) || max_iter < 1) return RRAM_E_ARG;
    if (r_row == 0.0 && r_col == 0.0) return mvm_ideal(R, C, g, v_in, batch, i_out);
    if (r_row == 0.0) return mvm_ideal_rows(R, C, g, v_in, batch, 1.0 / r_col, i_out);
    if (r_col == 0.0) return mvm_ideal_cols(R, C, g, v_in, batch, 1.0 / r_row, i_out);

    crossbar cb = {R, C, (size_t)R * C, g, 1.0 / r_row, 1.0 / r_col, NULL, NULL, NULL, NULL};
    size_t N = cb.N;
    double *mem = malloc(sizeof(double) * (4 * N + 5 * 2 * N + (size_t)(R > C ? R : C)));
    if (!mem) return RRAM_E_NOMEM;
    cb.rcp = mem;
    cb.rinv = mem + N;
    cb.ccp = mem + 2 * N;
    cb.cinv = mem + 3 * N;
    double *x = mem + 4 * N, *r = x + 2 * N, *z = r + 2 * N, *p = z + 2 * N, *q = p + 2 * N;
    double *diag = q + 2 * N;

    for (int32_t i = 0; i < R; ++i) {
        for (int32_t j = 0; j < C; ++j) diag[j] = cb.gr + (j < C - 1 ? cb.gr : 0.0) + g[(size_t)i * C + j];
        thomas_factor(C, diag, cb.gr, cb.rcp + (size_t)i * C, cb.rinv + (size_t)i * C);
    }
    for (int32_t j = 0; j < C; ++j) {
        for (int32_t i = 0; i < R; ++i) diag[i] = (i > 0 ? cb.gc : 0.0) + cb.gc + g[(size_t)i * C + j];
        thomas_factor(R, diag, cb.gc, cb.ccp + (size_t)j * R, cb.cinv + (size_t)j * R);
    }

    int worst = 0;
    for (size_t b = 0; b < batch; ++b) {
        const double *v = v_in + b * R;
        /* b vector: the row drivers feed the first node of each row. r = b - A x with x = M^{-1} b. */
        memset(r, 0, sizeof(double) * 2 * N);
        double bnorm = 0.0;
        for (int32_t i = 0; i < R; ++i) {
            r[(size_t)i * C] = cb.gr * v[i];
            bnorm += r[(size_t)i * C] * r[(size_t)i * C];
        }
        bnorm = sqrt(bnorm);
        int it = 0;
        if (bnorm == 0.0) {
            memset(x, 0, sizeof(double) * 2 * N);
        } else {
            apply_M(&cb, r, x);
            apply_A(&cb, x, q);
            for (size_t k = 0; k < 2 * N; ++k) r[k] -= q[k];
            apply_M(&cb, r, z);
            memcpy(p, z, sizeof(double) * 2 * N);
            double rz = dot(r, z, 2 * N);
            for (it = 1; it <= max_iter; ++it) {
                double rnorm = sqrt(dot(r, r, 2 * N));
                if (rnorm <= tol * bnorm) break;
                apply_A(&cb, p, q);
                double alpha = rz / dot(p, q, 2 * N);
                for (size_t k = 0; k < 2 * N; ++k) {
                    x[k] += alpha * p[k];
                    r[k] -= alpha * q[k];
                }
                apply_M(&cb, r, z);
                double rz_new = dot(r, z, 2 * N);
                double beta = rz_new / rz;
                rz = rz_new;
                for (size_t k = 0; k < 2 * N; ++k) p[k] = z[k] + beta * p[k];
            }
            if (it > max_iter) { free(mem); return RRAM_E_NOCONV; }
        }
        if (it > worst) worst = it;
        for (int32_t j = 0; j < C; ++j) i_out[b * C + j] = cb.gc * x[N + (size_t)(R - 1) * C + j];
    }
    free(mem);
    return worst;
}
