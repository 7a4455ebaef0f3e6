/* isa.h - which SIMD instruction set the hand-vectorised CPU kernels use, and
 * the LORAC_ISA environment switch that overrides it.
 *
 * Levels, each a superset of the one before:
 *
 *   LORAC_ISA_SCALAR  the plain C reference loops, built for the baseline
 *                     target (x86-64: SSE2, which the compiler may use
 *                     where it vectorises them on its own). Every CPU.
 *   LORAC_ISA_AVX2    AVX2 + FMA, 8 floats per vector (x86-64-v3's SIMD:
 *                     Haswell, Zen 1 and later).
 *   LORAC_ISA_AVX512  AVX-512 F/BW/DQ/VL on top of AVX2, 16 floats per vector
 *                     (x86-64-v4's SIMD: Skylake-X, Ice Lake, Zen 4).
 *
 * Who follows it: the elementwise float kernels (ops/vkern.h: GELU, SwiGLU,
 * exp, erf, the norm rows, AdamW, bf16 conversion), the flash-attention
 * flavour (op_attention_*: its AUTO setting) and the quantized matmul tiles
 * (quant/qmatmul.h: LORAC_QISA_AUTO). Dense GEMMs are oneDNN's / OpenBLAS's
 * and follow their own switches (ONEDNN_MAX_CPU_ISA, OPENBLAS_CORETYPE).
 *
 * Why a switch of our own and not GCC's target_clones: a clone is chosen by
 * the dynamic loader (an ifunc resolver) from the CPU alone, so the AVX2
 * path cannot be run, tested or timed on an AVX-512 machine, and a clone
 * the compiler failed to vectorise goes unnoticed. Here each level is an
 * explicit set of functions, picked once through a table of pointers.
 *
 * LORAC_ISA (read once, at the first use of any kernel):
 *   unset, "" or "auto"       the best level this CPU and build run
 *   "avx512", "avx2", "scalar" that level; one above what the CPU runs falls
 *                             back to the best it does run (info line on the
 *                             log callback), never an illegal instruction
 *   anything else             a warning on the log callback (lorac_set_log)
 *                             naming the accepted values, then "auto"
 * Thread-safe: the first call from any thread decides, once. */
#ifndef LORAC_OPS_ISA_H
#define LORAC_OPS_ISA_H

typedef enum lorac_isa {
    LORAC_ISA_SCALAR = 0,
    LORAC_ISA_AVX2 = 1,
    LORAC_ISA_AVX512 = 2,
} lorac_isa;
#define LORAC_ISA_LEVELS 3

/* The best level this CPU runs and this build contains. */
lorac_isa lorac_isa_best(void);
/* The level in use: lorac_isa_best() lowered by LORAC_ISA, or the last lorac_isa_force(). */
lorac_isa lorac_isa_active(void);
/* "scalar", "avx2", "avx512" ("?" for a value outside the enum). */
const char *lorac_isa_name(lorac_isa isa);
/* Parses a LORAC_ISA value: "scalar", "avx2", "avx512" set *out and return 1;
 * "auto" and "" set *out = lorac_isa_best() and return 1; anything else
 * returns 0 and leaves *out alone. Case-sensitive. */
int lorac_isa_parse(const char *s, lorac_isa *out);
/* For tests and benchmarks: make `want` the active level from now on (lowered
 * to lorac_isa_best() when the CPU lacks it) and return the level now active.
 * Kernels already running finish on the level they started with. */
lorac_isa lorac_isa_force(lorac_isa want);

#endif
