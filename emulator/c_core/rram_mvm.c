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

/*
 * General case. With T_r, T_c the row- and column-wire systems (wires plus the cells on the diagonal)
 * and D = diag(g), the nodal equations are  T_r vr - D vc = b,  -D vr + T_c vc = 0. Eliminating the
 * row layer, vr = T_r^-1 (b + D vc), leaves the Schur complement system
 *     S vc = D T_r^-1 b,   S = T_c - D T_r^-1 D   (symmetric positive definite),
 * solved by conjugate gradients preconditioned with T_c. Every T^-1 is a set of independent
 * tridiagonal line solves (Thomas). LANES input vectors are solved together, interleaved
 * (x[node * LANES + lane]), so each node's factors are loaded once per LANES vectors and the
 * strided column sweeps read whole cache lines.
 */
#define LANES 8

typedef struct {
    int32_t R, C;
    size_t N;
    const double *g;
    double gr, gc;
    double *rcp, *rinv; /* row-line factors, R x C */
    double *ccp, *cinv; /* column-line factors, C x R (one line after another) */
} crossbar;

/* out = T_r^-1 (D src) (+ b on the first node of each row if b != NULL): all row lines. */
static void solve_rows(const crossbar *cb, const double *src, const double *b, double *out) {
    int32_t R = cb->R, C = cb->C;
    double w = cb->gr;
    for (int32_t i = 0; i < R; ++i) {
        size_t o = (size_t)i * C;
        const double *cp = cb->rcp + o, *inv = cb->rinv + o, *gi = cb->g + o;
        double prev[LANES] = {0};
        for (int32_t j = 0; j < C; ++j) {
            const double *s = src + (o + j) * LANES;
            double *d = out + (o + j) * LANES;
            for (int l = 0; l < LANES; ++l) {
                double rhs = gi[j] * s[l] + (b && j == 0 ? b[(size_t)i * LANES + l] : 0.0);
                prev[l] = d[l] = (rhs + w * prev[l]) * inv[j];
            }
        }
        for (int32_t j = C - 1; j-- > 0;) {
            double *d = out + (o + j) * LANES, *dn = d + LANES;
            for (int l = 0; l < LANES; ++l) d[l] -= cp[j] * dn[l];
        }
    }
}

/* z = T_c^-1 r (all column lines); returns r.z per lane in dot. */
static void solve_cols(const crossbar *cb, const double *r, double *z, double *dot) {
    int32_t R = cb->R, C = cb->C;
    size_t s = (size_t)C * LANES;
    double w = cb->gc, acc[LANES] = {0};
    for (int32_t j = 0; j < C; ++j) {
        const double *cp = cb->ccp + (size_t)j * R, *inv = cb->cinv + (size_t)j * R;
        const double *rj = r + (size_t)j * LANES;
        double *zj = z + (size_t)j * LANES;
        double prev[LANES] = {0};
        for (int32_t i = 0; i < R; ++i)
            for (int l = 0; l < LANES; ++l) prev[l] = zj[i * s + l] = (rj[i * s + l] + w * prev[l]) * inv[i];
        for (int32_t i = R - 1; i-- > 0;)
            for (int l = 0; l < LANES; ++l) zj[i * s + l] -= cp[i] * zj[(i + 1) * s + l];
        for (int32_t i = 0; i < R; ++i)
            for (int l = 0; l < LANES; ++l) acc[l] += rj[i * s + l] * zj[i * s + l];
    }
    memcpy(dot, acc, sizeof acc);
}

/* q = S p = T_c p - D w with w = T_r^-1 D p (precomputed); returns p.q per lane in dot. */
static void apply_S(const crossbar *cb, const double *restrict p, const double *restrict w, double *restrict q,
                    double *dot) {
    int32_t R = cb->R, C = cb->C;
    size_t s = (size_t)C * LANES;
    double gc = cb->gc, acc[LANES] = {0};
    for (int32_t i = 0; i < R; ++i) {
        double cu = i > 0 ? gc : 0.0, cd = i < R - 1 ? gc : 0.0, self = gc + cu;
        for (int32_t j = 0; j < C; ++j) {
            size_t k = (size_t)i * C + j, o = k * LANES;
            double gij = cb->g[k];
            const double *pk = p + o, *wk = w + o;
            const double *up = i > 0 ? pk - s : pk, *down = i < R - 1 ? pk + s : pk;
            for (int l = 0; l < LANES; ++l) {
                double v = (self + gij) * pk[l] - cu * up[l] - cd * down[l] - gij * wk[l];
                q[o + l] = v;
                acc[l] += pk[l] * v;
            }
        }
    }
    memcpy(dot, acc, sizeof acc);
}

int rram_mvm(int32_t R, int32_t C, const double *g, const double *v_in, size_t batch, double r_row,
             double r_col, double tol, int32_t max_iter, double *i_out) {
    if (R <= 0 || C <= 0 || r_row < 0.0 || r_col < 0.0 || !(tol > 0.0) || max_iter < 1) return RRAM_E_ARG;
    if (r_row == 0.0 && r_col == 0.0) return mvm_ideal(R, C, g, v_in, batch, i_out);
    if (r_row == 0.0) return mvm_ideal_rows(R, C, g, v_in, batch, 1.0 / r_col, i_out);
    if (r_col == 0.0) return mvm_ideal_cols(R, C, g, v_in, batch, 1.0 / r_row, i_out);

    crossbar cb = {R, C, (size_t)R * C, g, 1.0 / r_row, 1.0 / r_col, NULL, NULL, NULL, NULL};
    size_t N = cb.N, len = N * LANES;
    size_t line = (size_t)(R > C ? R : C);
    double *mem = malloc(sizeof(double) * (4 * N + 6 * len + line + (size_t)R * LANES));
    if (!mem) return RRAM_E_NOMEM;
    cb.rcp = mem;
    cb.rinv = mem + N;
    cb.ccp = mem + 2 * N;
    cb.cinv = mem + 3 * N;
    double *x = mem + 4 * N, *r = x + len, *z = r + len, *p = z + len, *q = p + len, *w = q + len;
    double *diag = w + len, *bdrv = diag + line;

    /* The line factorizations depend only on g: computed once, shared by every vector. */
    for (int32_t i = 0; i < R; ++i) {
        for (int32_t j = 0; j < C; ++j) diag[j] = cb.gr + (j < C - 1 ? cb.gr : 0.0) + g[(size_t)i * C + j];
        thomas_factor(C, diag, cb.gr, cb.rcp + (size_t)i * C, cb.rinv + (size_t)i * C);
    }
    for (int32_t j = 0; j < C; ++j) {
        for (int32_t i = 0; i < R; ++i) diag[i] = (i > 0 ? cb.gc : 0.0) + cb.gc + g[(size_t)i * C + j];
        thomas_factor(R, diag, cb.gc, cb.ccp + (size_t)j * R, cb.cinv + (size_t)j * R);
    }

    int worst = 0;
    for (size_t b0 = 0; b0 < batch; b0 += LANES) {
        int nb = (int)(batch - b0 < LANES ? batch - b0 : LANES);
        double bnorm[LANES] = {0}, rz[LANES], rr[LANES], tmp[LANES], alpha[LANES], beta[LANES];
        int active[LANES];
        /* Row drivers: gr * v_i into the first node of row i. Unused lanes stay zero. */
        memset(bdrv, 0, sizeof(double) * (size_t)R * LANES);
        for (int l = 0; l < nb; ++l)
            for (int32_t i = 0; i < R; ++i) bdrv[(size_t)i * LANES + l] = cb.gr * v_in[(b0 + l) * R + i];
        /* Reduced right-hand side c = D T_r^-1 b (x = 0 as the source term of solve_rows). */
        memset(x, 0, sizeof(double) * len);
        solve_rows(&cb, x, bdrv, w);
        for (size_t k = 0; k < N; ++k)
            for (int l = 0; l < LANES; ++l) {
                double c = g[k] * w[k * LANES + l];
                r[k * LANES + l] = c;
                bnorm[l] += c * c;
            }
        for (int l = 0; l < LANES; ++l) bnorm[l] = sqrt(bnorm[l]);
        /* x0 = 0, r0 = c. */
        solve_cols(&cb, r, z, rz);
        memcpy(p, z, sizeof(double) * len);
        for (int l = 0; l < LANES; ++l) rr[l] = bnorm[l] * bnorm[l];
        int it;
        for (it = 0; it <= max_iter; ++it) {
            int any = 0;
            for (int l = 0; l < LANES; ++l) {
                active[l] = l < nb && bnorm[l] > 0.0 && sqrt(rr[l]) > tol * bnorm[l];
                any |= active[l];
            }
            if (!any) break;
            if (it == max_iter) { free(mem); return RRAM_E_NOCONV; }
            solve_rows(&cb, p, NULL, w);
            apply_S(&cb, p, w, q, tmp);
            for (int l = 0; l < LANES; ++l) {
                alpha[l] = active[l] ? rz[l] / tmp[l] : 0.0;
                rr[l] = 0.0;
            }
            /* Converged lanes get alpha = 0 and stay where they are. */
            for (size_t k = 0; k < N; ++k) {
                double *xk = x + k * LANES, *rk = r + k * LANES;
                const double *pk = p + k * LANES, *qk = q + k * LANES;
                for (int l = 0; l < LANES; ++l) {
                    xk[l] += alpha[l] * pk[l];
                    rk[l] -= alpha[l] * qk[l];
                    rr[l] += rk[l] * rk[l];
                }
            }
            solve_cols(&cb, r, z, tmp);
            for (int l = 0; l < LANES; ++l) {
                beta[l] = active[l] ? tmp[l] / rz[l] : 0.0;
                if (active[l]) rz[l] = tmp[l];
            }
            for (size_t k = 0; k < len; k += LANES)
                for (int l = 0; l < LANES; ++l) p[k + l] = z[k + l] + beta[l] * p[k + l];
        }
        if (it > worst) worst = it;
        /* Column currents into the virtual grounds. */
        const double *xb = x + (size_t)(R - 1) * C * LANES;
        for (int l = 0; l < nb; ++l)
            for (int32_t j = 0; j < C; ++j) i_out[(b0 + l) * C + j] = cb.gc * xb[(size_t)j * LANES + l];
    }
    free(mem);
    return worst;
}
