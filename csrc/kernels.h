/*
 * The block kernels of each result dtype, compiled once per instruction-set level:
 * each kernels_<level>.c sets its target and names its table, then includes this file.
 * The includer defines FL2_KERNEL_TABLE, the name of the table to define, and may define
 * FL2_KERNEL_PART, the kind of kernel this translation unit defines (with its table):
 *   FL2_PART_RUN      the default: the runs of one output, table FL2_KERNEL_TABLE
 *   FL2_PART_COLUMNS  FL2_KERNEL_TABLE_columns (kernels_<level>_columns.c)
 *   FL2_PART_ROWS     FL2_KERNEL_TABLE_rows (kernels_<level>_rows.c)
 * Three translation units per level, not one: a level's kernels are several minutes of -O3
 * for one compiler process, a third of that for each of three, which a parallel build (setup.py,
 * tests/c/check_builds.sh) runs at once.
 */
#define FL2_PART_RUN 1
#define FL2_PART_COLUMNS 2
#define FL2_PART_ROWS 3
#ifndef FL2_KERNEL_PART
#define FL2_KERNEL_PART FL2_PART_RUN
#endif
#include "internal.h"
#include "vectors.h"
#include "losses.h" /* (again: now with the element functions) */

#define FL2_KNAME(name) FL2_CAT(FL2_KERNEL_TABLE, name)

#if !defined(FL2_BFLOAT16_ONLY)
/* y_true, y_pred, weights: one dtype for all (float32 operands of a float64 result are
 * converted into the float64 kernels' buffers block by block: strided.c fl2_run_strided) */
#define BLOCK_FN FL2_KNAME(_f_f)
#define T_TRUE float
#define T_PRED float
#define COMPENSATED 0
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_f_f_wf)
#define T_TRUE float
#define T_PRED float
#define T_WEIGHTS float
#define COMPENSATED 0
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_d_d)
#define T_TRUE double
#define T_PRED double
#define COMPENSATED 1
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_d_d_wd)
#define T_TRUE double
#define T_PRED double
#define T_WEIGHTS double
#define COMPENSATED 1
#include "block_template.h"

/* float16: every operand (a float32 result; float16 beside float32 or float64 operands is
 * converted, convert.c) */
#define BLOCK_FN FL2_KNAME(_h_h)
#define T_TRUE fl2_half
#define T_PRED fl2_half
#define COMPENSATED 0
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_h_h_wh)
#define T_TRUE fl2_half
#define T_PRED fl2_half
#define T_WEIGHTS fl2_half
#define COMPENSATED 0
#include "block_template.h"

#endif /* !FL2_BFLOAT16_ONLY */

/* bfloat16: every operand (as float16) */
#define BLOCK_FN FL2_KNAME(_b_b)
#define T_TRUE fl2_bhalf
#define T_PRED fl2_bhalf
#define COMPENSATED 0
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_b_b_wb)
#define T_TRUE fl2_bhalf
#define T_PRED fl2_bhalf
#define T_WEIGHTS fl2_bhalf
#define COMPENSATED 0
#include "block_template.h"

#if defined(FL2_BFLOAT16_ONLY)
/* (kernels_avx512bf16.c: the two bfloat16 kernels alone, in the order of the full tables) */
#if FL2_KERNEL_PART == FL2_PART_RUN
const fl2_block_fn FL2_KERNEL_TABLE[2] = {FL2_KNAME(_b_b), FL2_KNAME(_b_b_wb)};
#elif FL2_KERNEL_PART == FL2_PART_COLUMNS
const fl2_columns_fn FL2_CAT(FL2_KERNEL_TABLE, _columns)[2] = {FL2_KNAME(_b_b_columns), FL2_KNAME(_b_b_wb_columns)};
#else
const fl2_rows_fn FL2_CAT(FL2_KERNEL_TABLE, _rows)[2] = {FL2_KNAME(_b_b_rows), FL2_KNAME(_b_b_wb_rows)};
#endif
#else
/* no y_true: the L2 penalty */
#define BLOCK_FN FL2_KNAME(_penalty_f)
#define T_PRED float
#define COMPENSATED 0
#include "block_template.h"
#define BLOCK_FN FL2_KNAME(_penalty_d)
#define T_PRED double
#define COMPENSATED 1
#include "block_template.h"

#if FL2_KERNEL_PART == FL2_PART_RUN
const fl2_block_fn FL2_KERNEL_TABLE[FL2_NKERNELS] = {
    FL2_KNAME(_f_f), FL2_KNAME(_f_f_wf), FL2_KNAME(_d_d), FL2_KNAME(_d_d_wd),
    FL2_KNAME(_penalty_f), FL2_KNAME(_penalty_d), FL2_KNAME(_h_h), FL2_KNAME(_h_h_wh),
    FL2_KNAME(_b_b), FL2_KNAME(_b_b_wb),
};
#elif FL2_KERNEL_PART == FL2_PART_COLUMNS
const fl2_columns_fn FL2_CAT(FL2_KERNEL_TABLE, _columns)[FL2_NKERNELS] = {
    FL2_KNAME(_f_f_columns), FL2_KNAME(_f_f_wf_columns), FL2_KNAME(_d_d_columns),
    FL2_KNAME(_d_d_wd_columns), FL2_KNAME(_penalty_f_columns), FL2_KNAME(_penalty_d_columns),
    FL2_KNAME(_h_h_columns), FL2_KNAME(_h_h_wh_columns), FL2_KNAME(_b_b_columns),
    FL2_KNAME(_b_b_wb_columns),
};
#else
const fl2_rows_fn FL2_CAT(FL2_KERNEL_TABLE, _rows)[FL2_NKERNELS] = {
    FL2_KNAME(_f_f_rows), FL2_KNAME(_f_f_wf_rows), FL2_KNAME(_d_d_rows),
    FL2_KNAME(_d_d_wd_rows), FL2_KNAME(_penalty_f_rows), FL2_KNAME(_penalty_d_rows),
    FL2_KNAME(_h_h_rows), FL2_KNAME(_h_h_wh_rows), FL2_KNAME(_b_b_rows), FL2_KNAME(_b_b_wb_rows),
};
#endif
#endif /* FL2_BFLOAT16_ONLY */
