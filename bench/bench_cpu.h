/* bench_cpu.h - the CPU line every kernel benchmark prints first (included
 * by bench_kernels.c and bench_qmatmul.c; header-only, so each bench .c file
 * stays one executable). */
#ifndef LORAC_BENCH_CPU_H
#define LORAC_BENCH_CPU_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/isa.h"

/* "model name" and the flags this benchmark cares about, from /proc/cpuinfo. */
static void print_cpu(void) {
    static const char *const want[] = {"avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"};
    char line[8192], model[256] = "?", flags[8192] = "";
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        if (!strncmp(line, "model name", 10) && !strcmp(model, "?")) snprintf(model, sizeof model, "%s", colon + 2);
        if (!strncmp(line, "flags", 5) && !flags[0]) snprintf(flags, sizeof flags, " %s", colon + 2);
    }
    if (f) fclose(f);
    model[strcspn(model, "\n")] = 0;
    flags[strcspn(flags, "\n")] = ' ';
    printf("cpu: %s\nflags:", model);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char tok[32];
        snprintf(tok, sizeof tok, " %s ", want[i]);
        printf(" %s%s", strstr(flags, tok) ? "" : "no-", want[i]);
    }
    printf("\nlevels: best %s, LORAC_ISA %s\n", lorac_isa_name(lorac_isa_best()),
           getenv("LORAC_ISA") ? getenv("LORAC_ISA") : "(unset)");
}

#endif
