/* isa.c - detecting the CPU's SIMD level and applying LORAC_ISA (see isa.h). */
#include "ops/isa.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *const g_names[LORAC_ISA_LEVELS] = {"scalar", "avx2", "avx512"};

const char *lorac_isa_name(lorac_isa isa) { return (unsigned)isa < LORAC_ISA_LEVELS ? g_names[isa] : "?"; }

/* What the CPU runs. The feature sets are those the per-ISA kernels are
 * compiled for (ops/vkern_avx2.c, vkern_avx512.c), so a level is only
 * reported when every instruction its code may contain is there (the
 * quantized tiles, which also want F16C, check that themselves). On
 * other architectures (or compilers without the x86 builtins) only the
 * scalar level exists. */
static lorac_isa detect(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (avx2 && avx512) return LORAC_ISA_AVX512;
    if (avx2) return LORAC_ISA_AVX2;
#endif
    return LORAC_ISA_SCALAR;
}

/* Both set once by init(); g_active changes later only through lorac_isa_force.
 * Atomic so a thread reading it while a test forces a level sees one or the
 * other value, never a torn one. */
static lorac_isa g_best;
static atomic_int g_active;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* lorac_isa_parse with "auto" meaning `best` (init() cannot call
 * lorac_isa_best: that would wait on the pthread_once it is running in). */
static int parse(const char *s, lorac_isa best, lorac_isa *out) {
    if (!s) return 0;
    if (!*s || !strcmp(s, "auto")) {
        *out = best;
        return 1;
    }
    for (int i = 0; i < LORAC_ISA_LEVELS; i++)
        if (!strcmp(s, g_names[i])) {
            *out = (lorac_isa)i;
            return 1;
        }
    return 0;
}

int lorac_isa_parse(const char *s, lorac_isa *out) { return parse(s, lorac_isa_best(), out); }

static void init(void) {
    g_best = detect();
    lorac_isa want = g_best;
    const char *env = getenv("LORAC_ISA");
    if (env && !parse(env, g_best, &want))
        lorac_log(1, "LORAC_ISA='%s' is not one of avx512, avx2, scalar, auto; using %s, the best this CPU runs", env,
                  g_names[g_best]);
    if (want > g_best) {
        lorac_log(0, "LORAC_ISA=%s: this CPU lacks it; using %s", g_names[want], g_names[g_best]);
        want = g_best;
    }
    atomic_store(&g_active, (int)want);
}

lorac_isa lorac_isa_best(void) {
    pthread_once(&g_once, init);
    return g_best;
}

lorac_isa lorac_isa_active(void) {
    pthread_once(&g_once, init);
    return (lorac_isa)atomic_load_explicit(&g_active, memory_order_relaxed);
}

lorac_isa lorac_isa_force(lorac_isa want) {
    pthread_once(&g_once, init);
    if ((unsigned)want >= LORAC_ISA_LEVELS || want > g_best) want = g_best;
    atomic_store(&g_active, (int)want);
    return want;
}
