/*
 * ckernels.h — the whole C ABI of tune's kernel module.
 *
 * Conventions (read once, they hold for every function below):
 *  - Plain C, explicit shapes. Matrices are row-major. Shapes are listed in the
 *    first comment lines of each function as [dim0, dim1, ...].
 *  - Outputs come first, then inputs, then weights, then shape integers.
 *  - `_forward` outputs are OVERWRITTEN. In `_backward`, gradients w.r.t. inputs
 *    are overwritten unless stated; gradients w.r.t. parameters ACCUMULATE (+=).
 *  - Every op has a naive `_ref` twin kept forever: test oracle, fallback, and the
 *    baseline that `tune bench` prints. The un-suffixed entry point dispatches at
 *    run time (AVX-512 -> AVX2 -> scalar) unless ck_set_isa() forces a path.
 *  - Weight types are ggml's type ids (ck_type below) so GGUF tensors can be used
 *    in place, without conversion.
 */
#ifndef CKERNELS_H
#define CKERNELS_H

#include "ck_quant.h"
#include "ck_kquant_write.h"
#include "ck_ops.h"
#include "ck_train.h"

#endif
