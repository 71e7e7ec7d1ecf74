// Byte layouts of edgekit's quantized tensors, mirrored from edgekit/quant/formats.py.
//
// edgekit/quant/formats.py is the one source of truth: when a layout changes there it must change here too, and the
// static_asserts below pin the sizes so that a silent padding change cannot slip through;
// tests/test_formats.py::test_constants_match_formats_h compares both (edgekit._C.format_constants()). Everything
// here is plain C (usable from the C runtime) as well as C++.
#ifndef EDGEKIT_FORMATS_H
#define EDGEKIT_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---------------------------------------------------------------------------------------------------------------
// Int4 weights, group-wise along K.
// ---------------------------------------------------------------------------------------------------------------

// GGUF's block size for Q4_0 / Q4_1 (formats.Q4_0_BLOCK).
#define EK_Q4_BLOCK 32

// Symmetric int4: w = (q - 8) * d, one fp16 scale per group. Bit-for-bit GGUF Q4_0.
#define EK_Q4_SYM_ZERO 8

// Group-split nibble order: inside a group of G codes, byte j holds code j in its low nibble and code j + G/2 in
// its high nibble. So one load of G/2 bytes gives the first half-group (& 0x0F) and the second (>> 4).
#define EK_Q4_LO_MASK 0x0F
#define EK_Q4_HI_SHIFT 4

// Index of the byte that holds code `i` of a group of `g` codes, and whether it sits in the high nibble.
#define EK_Q4_BYTE_OF(i, g) ((i) < (g) / 2 ? (i) : (i) - (g) / 2)
#define EK_Q4_IS_HIGH(i, g) ((i) >= (g) / 2)

typedef struct ek_block_q4_0 {
    uint16_t d;                    // fp16 scale (IEEE half bits)
    uint8_t qs[EK_Q4_BLOCK / 2];   // 32 codes, group-split order
} ek_block_q4_0;

// Asymmetric int4: w = q * d + m.  Bit-for-bit GGUF Q4_1.
typedef struct ek_block_q4_1 {
    uint16_t d;                    // fp16 scale
    uint16_t m;                    // fp16 min
    uint8_t qs[EK_Q4_BLOCK / 2];   // 32 codes, group-split order
} ek_block_q4_1;

// ---------------------------------------------------------------------------------------------------------------
// Per-row (per-token) activation quantization.
//
//   amax  = max |x|                          (fp32)
//   inv   = qmax / amax  in fp32, 0 when amax is 0 (or NaN)
//   q     = clamp(nearbyintf(x * inv), -qmax, qmax)   round half to even; NaN products become 0
//   scale = amax / qmax  in fp32
// ---------------------------------------------------------------------------------------------------------------
//
// Per-block activation quantization (one scale per 32 consecutive values of a row, GGUF Q8_0's blocking) is this
// same rule applied to the row viewed as [k / 32, 32]; scales then form [m, k / 32] (formats.quantize_blocks_q8).
#define EK_Q8_ROW_QMAX 127   // int8 activations (formats.Q8_ROW_QMAX)
#define EK_Q4_ACT_QMAX 7     // int4 activations for W4A4 tokens (formats.Q4_ACT_QMAX)

// ---------------------------------------------------------------------------------------------------------------
// Kernel layout "q4x4": symmetric int4 group-32 weights repacked for the matmul kernels (formats.pack_q4x4 in
// Python, ek_pack_q4x4 in C). Rows are padded to a multiple of EK_Q4X4_ROWS with zero weights (codes 8, scale 0)
// and grouped into tiles of four rows; with nb = K / 32 blocks per row, tile t and block j hold
//
//   qs[(t * nb + j) * 64 + r * 16 + b] = byte b of the Q4_0 qs of row 4t + r, block j   (group-split nibbles)
//   d [(t * nb + j) * 4 + r]           = fp16 scale bits of row 4t + r, block j
//
// so one 64-byte cache line carries one block of four rows and a kernel streams both arrays front to back. The
// bytes are Q4_0's, only reordered: packing is lossless and GGUF Q4_0 rows can be packed directly.
// ---------------------------------------------------------------------------------------------------------------
#define EK_Q4X4_ROWS 4
#define EK_Q4X4_TILE_QS_BYTES (EK_Q4X4_ROWS * EK_Q4_BLOCK / 2)  // 64

// A read-only view of a q4x4 matrix [n, k]; k is a multiple of 32, the arrays cover ceil(n / 4) tiles.
// ldb: blocks stored per row (per tile) when the view is the first k columns of a wider matrix (an adaptive
// computation module's down projection runs a prefix of its inputs); 0 means k / 32, a whole matrix. Kernels step
// from tile to tile by ldb and read k / 32 blocks of each, so a prefix view gives exactly the first k / 32 terms of
// the whole matrix's per-row sum, in the same order.
typedef struct ek_q4x4 {
    const uint8_t* qs;
    const uint16_t* d;
    int64_t n;
    int64_t k;
    int64_t ldb;
} ek_q4x4;

// The blocks stored per row (tile) of a view: its ldb, or k / 32 for a whole matrix.
static inline int64_t ek_q4_ldb(const ek_q4x4* w) { return w->ldb ? w->ldb : w->k / EK_Q4_BLOCK; }

// ---------------------------------------------------------------------------------------------------------------
// Kernel layout "q4x16": the same codes and scales regrouped by 16 rows for 512-bit dot-product kernels (one 32-bit
// lane per row). Built from q4x4 at load time (ek_pack_q4x16), never stored in files. Group g and block j hold
//
//   qs[(g * nb + j) * 256 + l * 64 + r * 4 + b] = codes 4l + b (low nibble) and 16 + 4l + b (high nibble) of row
//                                                 16g + r, block j                       (l < 4, r < 16, b < 4)
//   d [(g * nb + j) * 16 + r]                   = fp16 scale bits of row 16g + r, block j
//
// Rows past n are padding (codes 8, scale 0), as in q4x4. Views use the ek_q4x4 struct (same four fields).
// ---------------------------------------------------------------------------------------------------------------
#define EK_Q4X16_ROWS 16
#define EK_Q4X16_GROUP_QS_BYTES (EK_Q4X16_ROWS * EK_Q4_BLOCK / 2)  // 256

#ifdef __cplusplus
}  // extern "C"
#endif

// Sizes are part of the on-disk / GGUF contract: 2 + 16 and 2 + 2 + 16 bytes, no padding.
#ifdef __cplusplus
static_assert(sizeof(ek_block_q4_0) == 18, "ek_block_q4_0 must be 18 bytes (GGUF Q4_0)");
static_assert(sizeof(ek_block_q4_1) == 20, "ek_block_q4_1 must be 20 bytes (GGUF Q4_1)");
static_assert(offsetof(ek_block_q4_0, qs) == 2, "Q4_0 codes follow the fp16 scale");
static_assert(offsetof(ek_block_q4_1, qs) == 4, "Q4_1 codes follow the fp16 scale and min");
static_assert(EK_Q4_BLOCK % 2 == 0, "a group must hold an even number of codes");
static_assert(EK_Q4X4_TILE_QS_BYTES == 64, "a q4x4 tile block is one 64-byte line");
static_assert(EK_Q4X16_GROUP_QS_BYTES == 4 * 64, "a q4x16 group block is four 64-byte lines, one per 4 codes");
#else
_Static_assert(sizeof(ek_block_q4_0) == 18, "ek_block_q4_0 must be 18 bytes (GGUF Q4_0)");
_Static_assert(sizeof(ek_block_q4_1) == 20, "ek_block_q4_1 must be 20 bytes (GGUF Q4_1)");
#endif

#endif  // EDGEKIT_FORMATS_H
