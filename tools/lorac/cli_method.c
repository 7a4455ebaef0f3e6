/* cli_method.c - lorac train's LoRA flags and training method as the
 * fields of lorac_train_config (lorac.h), the trainable-parameter line
 * (PEFT's print_trainable_parameters) and the progress display. The
 * library applies the method (lorac_llm_prepare); the flags' error
 * messages are the CLI's own. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --rank-pattern / --alpha-pattern: KEY=VALUE pairs as the library parses
 * them (keys under 128 characters, at most 64 pairs, values positive
 * numbers, integers for ranks); a usage error naming the flag. */
static void check_patterns(const cli_args *a, const char *flag, const char *s, int integer) {
    int n = 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, ','), *eq = strchr(p, '=');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        if (!eq || (e && eq > e) || eq == p || eq - p >= 128)
            cli_die(a->cmd, EXIT_USAGE, "%s: bad entry in '%s'; hint: KEY=VALUE pairs separated by commas, "
                    "e.g. q_proj=16,layers.0.mlp.down_proj=4", flag, s);
        if (++n > 64) cli_die(a->cmd, EXIT_USAGE, "%s: more than %d entries", flag, 64);
        char num[64];
        const size_t vl = len - (size_t)(eq + 1 - p);
        if (vl == 0 || vl >= sizeof num) cli_die(a->cmd, EXIT_USAGE, "%s: no value for '%.*s'", flag, (int)(eq - p), p);
        memcpy(num, eq + 1, vl);
        num[vl] = 0;
        char *end;
        const double v = strtod(num, &end);
        if (*end || !(v > 0) || v > 1e6 || (integer && v != (double)(long)v))
            cli_die(a->cmd, EXIT_USAGE, "%s: value '%s' for '%.*s' is not a positive %s", flag, num, (int)(eq - p), p,
                    integer ? "integer" : "number");
        if (!e) break;
        p = e + 1;
    }
}

/* --preset: 1 for appendix-e, 0 without; anything else is a usage error. */
static int preset_appx(const cli_args *a) {
    const char *preset = cli_str(a, "preset", NULL);
    if (preset && strcmp(preset, "appendix-e")) cli_die(a->cmd, EXIT_USAGE, "--preset '%s' unknown; hint: appendix-e", preset);
    return preset != NULL;
}

/* The library's own check of what the CLI does not parse (--layers, --init). */
static void lib_check(const cli_args *a, const lorac_train_config *c) { cli_check(a->cmd, lorac_train_config_check(c)); }

/* --r .. --init into c (appx: appendix-e's defaults); lib = 1 checks --layers
 * and --init at once, in the order of the flags. */
static void lora_flags(const cli_args *a, lorac_train_config *c, int appx, int lib) {
    c->r = cli_int(a, "r", appx ? 16 : 8, 1, 4096);
    c->alpha = (float)cli_num(a, "alpha", c->r, 1e-6, 1e6);
    c->dropout = (float)cli_num(a, "dropout", 0, 0, 0.999);
    c->rslora = cli_has(a, "rslora");
    c->split_qkv = cli_has(a, "split-qkv") || appx;
    c->target_regex = cli_str(a, "target-regex", NULL);
    if (c->target_regex) {
        if (strlen(c->target_regex) >= 256) cli_die(a->cmd, EXIT_USAGE, "--target-regex is too long");
    } else {
        c->target = cli_str(a, "target", appx ? "all-linear,score" : "all-linear");
        cli_check_list(a, "--target", c->target);
    }
    c->bias = cli_str(a, "bias", "none");
    if (strcmp(c->bias, "none") && strcmp(c->bias, "all") && strcmp(c->bias, "lora_only"))
        cli_die(a->cmd, EXIT_USAGE, "--bias '%s': expected none, all or lora_only", c->bias);
    c->modules_to_save = cli_str(a, "modules-to-save", NULL);
    if (c->modules_to_save) cli_check_list(a, "--modules-to-save", c->modules_to_save);
    c->layers = cli_str(a, "layers", NULL);
    if (lib && c->layers) lib_check(a, c);
    c->dora = cli_has(a, "dora");
    c->rank_pattern = cli_str(a, "rank-pattern", NULL);
    c->alpha_pattern = cli_str(a, "alpha-pattern", NULL);
    if (c->rank_pattern) check_patterns(a, "--rank-pattern", c->rank_pattern, 1);
    if (c->alpha_pattern) check_patterns(a, "--alpha-pattern", c->alpha_pattern, 0);
    c->init = cli_str(a, "init", NULL);
    if (lib) lib_check(a, c); /* target_regex compiles, --init */
}

void cli_train_config(const cli_args *a, lorac_train_config *c) {
    const int appx = preset_appx(a);
    int n_last;
    c->method = cli_str(a, "method", "lora");
    (void)cli_method_parse(a->cmd, "--method", c->method, &n_last);
    lora_flags(a, c, appx, 0);
    c->head_init = cli_str(a, "head-init", appx ? "torch" : "hf");
    if (strcmp(c->head_init, "hf") && strcmp(c->head_init, "torch"))
        cli_die(a->cmd, EXIT_USAGE, "--head-init '%s': expected hf or torch", c->head_init);
    c->seed = cli_u64(a, "seed", 123);
}

void cli_lora_flags(const cli_args *a, lorac_train_config *c) {
    lora_flags(a, c, preset_appx(a), 1);
    c->seed = cli_u64(a, "seed", 123);
}

static void commas(char *buf, size_t n, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    size_t len = strlen(tmp), o = 0;
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        buf[o++] = tmp[i];
        if ((len - i - 1) % 3 == 0 && i + 1 < len && tmp[i] != '-') buf[o++] = ',';
    }
    buf[o] = 0;
}

void cli_print_params(const char *cmd, const lorac_llm *llm, FILE *f) {
    lorac_llm_info info = {.size = sizeof info};
    cli_check(cmd, lorac_llm_get_info(llm, &info));
    char a[32], b[32];
    commas(a, sizeof a, info.params_trainable);
    commas(b, sizeof b, info.params_all);
    fprintf(f, "trainable params: %s || all params: %s || trainable%%: %.4f\n", a, b,
            info.params_all ? 100.0 * info.params_trainable / info.params_all : 0.0);
}

int cli_progress(const lorac_train_progress *p, void *ctx) {
    (void)ctx;
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (p->is_eval) {
        if (tty) fputc('\n', stderr);
        if (p->val_acc >= 0)
            fprintf(stderr, "epoch %d step %d: val loss %.4f, val accuracy %.2f%%\n", p->epoch, p->step, p->val_loss, 100 * p->val_acc);
        else
            fprintf(stderr, "epoch %d step %d: val loss %.4f (perplexity %.2f)\n", p->epoch, p->step, p->val_loss, exp(p->val_loss));
        return 0;
    }
    if (tty) {
        int width = 30, done = p->total_steps ? (int)((double)p->step / p->total_steps * width) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < done ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %d/%d ep %d/%d loss %.4f lr %.2e %.0f tok/s ETA %.0fs  ", bar, p->step, p->total_steps,
                p->epoch, p->epochs, p->loss, p->lr, p->tokens_per_s, p->eta);
    } else if (p->step == 1 || p->step % 10 == 0 || p->step == p->total_steps) {
        fprintf(stderr, "step %d/%d epoch %d/%d loss %.4f lr %.3g tok/s %.0f elapsed %.0fs eta %.0fs\n", p->step,
                p->total_steps, p->epoch, p->epochs, p->loss, p->lr, p->tokens_per_s, p->elapsed, p->eta);
    }
    fflush(stderr);
    return 0; /* Ctrl-C stops through lorac_train_config.stop (cmd_train.c) */
}
