// Declarations of every kernel implementation edgekit compiles.
//
// Names carry the operation, the formats and the ISA (`ek_<op>__<isa>`); the ISA suffix is also the folder under
// csrc/kernels/ and the implementation string that Python sees (`_C.implementations(op)`). Only the implementations
// for which EDGEKIT_HAVE_<ISA> is defined are linked in; dispatch.cpp picks among them at run time.
#ifndef EDGEKIT_KERNELS_H
#define EDGEKIT_KERNELS_H

#include <stdint.h>

#include "edgekit/formats.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per-row symmetric quantization of activations (see formats.h for the exact rule).
//
//   x       float32 [m, k], row-major, contiguous
//   qmax    1..127 (127 for int8, 7 for int4 activations)
//   q       int8 [m, k] output codes in -qmax..qmax
//   scales  float32 [m] output, amax / qmax per row
//
// Every implementation gives bit-identical codes and scales for the same input.
typedef void (*ek_quant_row_q8_fn)(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);

void ek_quant_row_q8__scalar(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_quant_row_q8__avx2(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#endif
#if defined(EDGEKIT_HAVE_AVX512)
void ek_quant_row_q8__avx512(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#endif

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // EDGEKIT_KERNELS_H
