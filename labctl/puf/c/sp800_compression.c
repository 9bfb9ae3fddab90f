/* SP 800-90B 6.3.4 compression estimate: the expectation G(z) of step 7, in closed form
 * (sum over t of the sum over u < t becomes a weighted sum over u). */
#include <math.h>

#include "sp800.h"

double sp_compression_g(double z, const double *log2_u, int64_t d, int64_t blocks) {
    if (!(z < 1.0)) return 0.0; /* (1 - z)^(u - 1) = 0 for every u >= 2 */
    const double l = log1p(-z);
    double head = 0.0, weighted = 0.0, mid = 0.0;
    for (int64_t u = 2; u <= blocks; u++) {
        const double power = exp((double)(u - 1) * l);
        if (power == 0.0) break; /* underflow: every later term is 0 as well */
        const double a = log2_u[u - 2] * power;
        if (u <= d) {
            head += a;
        } else {
            mid += a;
            weighted += (double)(blocks - u) * a;
        }
    }
    return z * (z * ((double)(blocks - d) * head + weighted) + mid) / (double)(blocks - d);
}
