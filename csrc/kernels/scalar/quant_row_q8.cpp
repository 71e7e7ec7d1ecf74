// Scalar reference of the per-row activation quantizer: the C++ twin of formats.quantize_rows_q8.
//
// Compiled with -ffp-contract=off (CMakeLists.txt) so that every float operation rounds exactly as numpy's does;
// the SIMD kernels are tested bit-for-bit against this file and against numpy.
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "../quant_row_q8_common.h"
#include "edgekit/kernels.h"


extern "C" void ek_quant_row_q8__scalar(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales) {
    assert(m >= 0 && k >= 0);
    assert(qmax >= 1 && qmax <= 127);
    assert((x && q && scales) || m == 0);

    const float fqmax = (float)qmax;
    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * k;
        int8_t* qr = q + r * k;

        const float amax = ek_q8_amax_from(xr, 0, k, 0.0f, false);
        const float inv = ek_q8_inv(amax, qmax);
        for (int64_t i = 0; i < k; ++i) qr[i] = ek_q8_code(xr[i], inv, fqmax);
        scales[r] = amax / fqmax;
    }
}
