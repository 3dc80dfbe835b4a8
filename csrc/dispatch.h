/* Whether this build has per-instruction-set kernels with a run-time choice (GCC or clang on
 * x86-64); included before any target pragma, so it must define nothing but macros. */
#ifndef FASTL2_DISPATCH_H
#define FASTL2_DISPATCH_H
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(FL2_NO_DISPATCH)
#define FL2_HAVE_X86_DISPATCH 1
#endif
#endif
