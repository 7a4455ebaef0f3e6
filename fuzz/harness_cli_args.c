/* harness_cli_args.c - fuzz entry point for the CLI's option parser
 * (tools/lorac/cli_common.c): cli_parse, the typed getters, the LoRA flags
 * (cli_method.c's cli_train_config: --r --alpha --target --layers ...) and
 * --method.
 *
 * The CLI reports a bad flag by printing it and calling exit(2) (cli_die).
 * To fuzz that without forking and without changing the CLI, this file
 * compiles cli_common.c and cli_method.c into itself with exit() renamed to a function that
 * jumps back here: a usage error is then a clean return, and anything else
 * (a crash, a sanitizer report) is a finding. The parser allocates nothing,
 * so jumping out of it leaks nothing.
 *
 * Input: the arguments after "lorac train", separated by NUL or newline
 * bytes (at most 48). */
#define _GNU_SOURCE
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static jmp_buf g_exit_jump;
static int g_exit_armed;

static _Noreturn void fuzz_cli_exit(int code) {
    if (!g_exit_armed) exit(code);
    longjmp(g_exit_jump, code + 1);
}

/* Every header cli_common.c includes is already in, so the rename below
 * reaches only its calls. */
#define exit fuzz_cli_exit
#include "../tools/lorac/cli_common.c"
#include "../tools/lorac/cli_method.c" /* the LoRA flags (cli_train_config) */
#undef exit
#include "../tools/lorac/cli_dist.c" /* cli_die's data-parallel side (no ranks here: cli_ranks stays NULL) */

/* The options lorac train declares that the parser and getters handle
 * without touching a file (a subset of cli_train_opts, which lives in
 * cmd_train.c with the command itself). */
static const cli_opt g_opts[] = {
    {"model", "PATH", "model"},
    {"data", "FILE", "data"},
    {"out", "DIR", "output"},
    {"epochs", "N", "epochs"},
    {"lr", "X", "learning rate"},
    {"batch", "N", "batch size"},
    {"max-len", "N", "max tokens"},
    {"seed", "N", "seed"},
    {"threads", "N", "threads"},
    {"format", "F", "data format"},
    {"skip-bad", NULL, "skip bad rows"},
    CLI_LORA_OPTS,
    CLI_ADAPTER_OPTS,
    {NULL, NULL, NULL},
};

int lorac_fuzz_cli_args(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[49];
    int argc = 0;
    for (char *p = buf, *end = buf + size; p <= end && argc < 48;) {
        char *q = p;
        while (q < end && *q != '\n' && *q != 0) q++;
        *q = 0;
        argv[argc++] = p;
        p = q + 1;
    }
    argv[argc] = NULL;

    cli_args a;
    g_exit_armed = 1;
    if (setjmp(g_exit_jump) == 0) {
        cli_parse(&a, "train", "usage: lorac train [options]", g_opts, argc, argv);
        lorac_train_config c;
        lorac_train_config_init(&c);
        cli_train_config(&a, &c);
        int n;
        const char *m = cli_str(&a, "method", NULL);
        if (m) (void)cli_method_parse("train", "--method", m, &n);
        (void)cli_int(&a, "epochs", 1, 1, 1000000);
        (void)cli_int(&a, "batch", 8, 1, 65536);
        (void)cli_int(&a, "max-len", 0, 0, 1 << 20);
        (void)cli_int(&a, "threads", 0, 1, 1024);
        (void)cli_num(&a, "lr", 1e-4, 0, 10);
        (void)cli_u64(&a, "seed", 123);
        (void)cli_has(&a, "skip-bad");
        const char *adapters[64];
        (void)cli_all(&a, "adapter", adapters, 64);
    }
    g_exit_armed = 0;
    free(buf);
    return 0;
}
