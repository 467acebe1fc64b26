// test_quantize.h — for the CUDA test programs: quantizes a row of any weight type libtunecuda decodes, with
// the CPU's writers (ck_quantize_row, and ck_kquant_write.h's for q5_0 and the K-quants it does not cover).
// Returns 0, or -1 for a type neither writes.
#pragma once
#include "ckernels.h"

static inline int tcu_test_quantize_row(int type, const float *x, void *dst, int64_t n) {
    switch (type) {
    case CK_TYPE_Q5_0: ck_quantize_row_q5_0_ref(x, dst, n); return 0;
    case CK_TYPE_Q4_K: ck_quantize_row_q4_K_ref(x, dst, n); return 0;
    case CK_TYPE_Q5_K: ck_quantize_row_q5_K_ref(x, dst, n); return 0;
    case CK_TYPE_Q6_K: ck_quantize_row_q6_K_ref(x, dst, n); return 0;
    default: return ck_quantize_row(type, x, dst, n);
    }
}
