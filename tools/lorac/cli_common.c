#define _GNU_SOURCE
#include "cli.h"
#include "lora/lora_init.h"
#include "ops/gemm.h"

#include "lora/adapter_io.h"
#include "lora/adapter_set.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "core/util.h"

void cli_die(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fflush(stderr);
    if (cli_dist_quiet_error(code)) {
        cli_dist_fail(code);
        exit(code);
    }
    /* one rank of a data-parallel run says which it is, and ends them all */
    if (cli_dist)
        dprintf(cli_err_fd(), "lorac %s: rank %d of %d (%s): ", cmd, lorac_dist_rank(cli_dist),
                lorac_dist_size(cli_dist), lorac_dist_host(cli_dist));
    else
        dprintf(cli_err_fd(), "lorac %s: ", cmd);
    va_start(ap, fmt);
    vdprintf(cli_err_fd(), fmt, ap);
    va_end(ap);
    dprintf(cli_err_fd(), "\n");
    cli_dist_fail(code);
    exit(code);
}

void cli_check(const char *cmd, lorac_status st) {
    if (st != LORAC_OK) cli_die(cmd, st == LORAC_ERR_ARG ? EXIT_USAGE : 1, "%s", lorac_last_error());
}

static void usage(const char *cmd, const char *text, const cli_opt *opts, FILE *f) {
    fprintf(f, "%s\n\nOptions:\n", text);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-24s %s\n", left, o->help);
    }
    fprintf(f, "  %-24s %s\n", "--help", "show this help");
    (void)cmd;
}

void cli_parse(cli_args *a, const char *cmd, const char *text, const cli_opt *opts, int argc, char **argv) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->opts = opts;
    while (opts[a->n_opts].name) a->n_opts++;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            usage(cmd, text, opts, stdout);
            exit(0);
        }
        if (strncmp(s, "--", 2) != 0)
            cli_die(cmd, EXIT_USAGE, "unexpected argument '%s'; hint: options start with --, see lorac %s --help", s, cmd);
        char name[64];
        const char *eq = strchr(s + 2, '=');
        size_t len = eq ? (size_t)(eq - s - 2) : strlen(s + 2);
        if (len >= sizeof name) cli_die(cmd, EXIT_USAGE, "unknown option '%s'; hint: lorac %s --help", s, cmd);
        memcpy(name, s + 2, len);
        name[len] = 0;
        int k = -1;
        for (int j = 0; j < a->n_opts; j++)
            if (!strcmp(opts[j].name, name)) k = j;
        if (k < 0) cli_die(cmd, EXIT_USAGE, "unknown option '--%s'; hint: lorac %s --help lists the options", name, cmd);
        if (!opts[k].arg) {
            if (eq) cli_die(cmd, EXIT_USAGE, "option --%s takes no value", name);
            a->values[k] = "1";
        } else if (eq) {
            a->values[k] = eq + 1;
        } else {
            if (i + 1 >= argc) cli_die(cmd, EXIT_USAGE, "option --%s needs a value (%s)", name, opts[k].arg);
            a->values[k] = argv[++i];
        }
        if (opts[k].arg) {
            if (a->n_occ >= 64) cli_die(cmd, EXIT_USAGE, "too many options (at most 64 with values)");
            a->occ_opt[a->n_occ] = k;
            a->occ_val[a->n_occ++] = a->values[k];
        }
    }
}

static int find(const cli_args *a, const char *name);

int cli_all(const cli_args *a, const char *name, const char **out, int max) {
    int k = find(a, name), n = 0;
    for (int i = 0; i < a->n_occ && n < max; i++)
        if (a->occ_opt[i] == k) out[n++] = a->occ_val[i];
    return n;
}

static int find(const cli_args *a, const char *name) {
    for (int j = 0; j < a->n_opts; j++)
        if (!strcmp(a->opts[j].name, name)) return j;
    fprintf(stderr, "lorac: internal error: option --%s not declared for '%s'\n", name, a->cmd);
    abort();
}

const char *cli_str(const cli_args *a, const char *name, const char *def) {
    const char *v = a->values[find(a, name)];
    return v ? v : def;
}

int cli_has(const cli_args *a, const char *name) { return a->values[find(a, name)] != NULL; }

double cli_num(const cli_args *a, const char *name, double def, double lo, double hi) {
    const char *v = cli_str(a, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < lo || x > hi)
        cli_die(a->cmd, EXIT_USAGE, "--%s '%s': expected a number in [%g, %g]", name, v, lo, hi);
    return x;
}

int cli_int(const cli_args *a, const char *name, int def, int lo, int hi) {
    const char *v = cli_str(a, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        cli_die(a->cmd, EXIT_USAGE, "--%s '%s': expected a whole number in [%d, %d]", name, v, lo, hi);
    return (int)x;
}

uint64_t cli_u64(const cli_args *a, const char *name, uint64_t def) {
    const char *v = cli_str(a, name, NULL);
    if (!v) return def;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-') cli_die(a->cmd, EXIT_USAGE, "--%s '%s': expected a non-negative whole number", name, v);
    return (uint64_t)x;
}

void cli_set_threads(const cli_args *a) {
    int n = cli_int(a, "threads", 0, 1, 1024);
    if (n == 0) {
        const char *e = getenv("OMP_NUM_THREADS");
        n = e && atoi(e) > 0 ? atoi(e) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    }
    if (n < 1) n = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The value of an option this command may not declare (NULL then). */
static const char *opt_if_declared(const cli_args *a, const char *name) {
    for (int j = 0; j < a->n_opts; j++)
        if (!strcmp(a->opts[j].name, name)) return a->values[j];
    return NULL;
}

/* --qformat for a qlora base at `path`: 1 = keep the GGUF blocks, 0 = NF4. */
static int qformat_keep(const cli_args *a, const char *path) {
    const char *f = opt_if_declared(a, "qformat");
    const int gguf = path && ends_with(path, ".gguf");
    if (!f) return gguf;
    if (!strcmp(f, "nf4")) return 0;
    if (strcmp(f, "keep")) cli_die(a->cmd, EXIT_USAGE, "--qformat '%s': expected nf4 or keep", f);
    if (!gguf)
        cli_die(a->cmd, EXIT_USAGE, "--qformat keep keeps a .gguf file's own quantized blocks; hint: for a safetensors "
                "model use --qformat nf4 (the default)");
    return 1;
}

/* --qembed: 1 = quantize the token embedding (default), 0 = keep it fp32. */
static int qembed_on(const cli_args *a) {
    const char *v = opt_if_declared(a, "qembed");
    if (!v || !strcmp(v, "on")) return 1;
    if (!strcmp(v, "off")) return 0;
    cli_die(a->cmd, EXIT_USAGE, "--qembed '%s': expected on or off", v);
}

/* --qformat / --qembed without --method qlora: a usage error. */
static void quant_opts_need_qlora(const cli_args *a, int qlora) {
    if (!qlora && (opt_if_declared(a, "qformat") || opt_if_declared(a, "qembed")))
        cli_die(a->cmd, EXIT_USAGE, "--%s is for --method qlora (the quantized base); hint: add --method qlora",
                opt_if_declared(a, "qformat") ? "qformat" : "qembed");
}

int cli_qbase_is_qlora(const cli_args *a) {
    const char *meth = cli_str(a, "method", "lora");
    if (strcmp(meth, "lora") && strcmp(meth, "qlora"))
        cli_die(a->cmd, EXIT_USAGE, "--method '%s': expected lora or qlora (the base the adapter was trained over)", meth);
    quant_opts_need_qlora(a, !strcmp(meth, "qlora"));
    return !strcmp(meth, "qlora");
}

static int method_is_qlora(const cli_args *a) {
    const char *meth = opt_if_declared(a, "method");
    return meth && !strcmp(meth, "qlora");
}

/* "LABEL: N Linears in NF4, base X MB (Y bits/param) instead of Z MB fp32; ..." for a quantized
 * (qlora) or bf16 base. */
static void print_quantized_base(const lorac_model *m, const char *label) {
    lorac_qstats q;
    lorac_model_qstats(m, &q);
    char fmts[96] = "";
    for (int f = 0; f < LORAC_QF_COUNT; f++) {
        if (!q.n_fmt[f]) continue;
        size_t len = strlen(fmts);
        snprintf(fmts + len, sizeof fmts - len, "%s%s", len ? "+" : "", lorac_qformat_name((lorac_qformat)f));
    }
    fprintf(stderr, "%s: %d Linears in %s, token embedding in %s; base %.4g MB (%.2f bits/param, %.3f bytes/param) "
            "instead of %.4g MB fp32; the Linears %.2f bits/param\n", label, q.n_linears, fmts[0] ? fmts : "-",
            q.embed_fmt ? lorac_qformat_name(q.embed_fmt) : "fp32", q.base_bytes / 1e6,
            q.base_params ? 8.0 * q.base_bytes / (double)q.base_params : 0.0,
            q.base_params ? q.base_bytes / (double)q.base_params : 0.0, 4.0 * (double)q.base_params / 1e6,
            q.q_params ? 8.0 * q.q_bytes / (double)q.q_params : 0.0);
    if (m->q_fallback)
        fprintf(stderr, "note: %d Linear%s could not keep the file's format and went to NF4 (%s%s)\n", m->q_fallback,
                m->q_fallback > 1 ? "s" : "", m->q_note, m->q_fallback > 1 ? "; ..." : "");
}

void cli_load_model(const cli_args *a, lorac_model **m, lorac_tokenizer **tok) {
    const char *path = cli_str(a, "model", NULL);
    if (!path) cli_die(a->cmd, EXIT_USAGE, "--model is required (a Hugging Face model directory or a .gguf file)");
    if (method_is_qlora(a))
        cli_check(a->cmd, lorac_model_load_quantized(path, (qformat_keep(a, path) ? LORAC_QLOAD_KEEP : LORAC_QLOAD_NF4) |
                                                               (qembed_on(a) ? 0 : LORAC_QLOAD_EMBED_FP32), m));
    else
        cli_check(a->cmd, lorac_model_load(path, m));
    const char *base = opt_if_declared(a, "base");
    if (base && strcmp(base, "fp32") && strcmp(base, "bf16"))
        cli_die(a->cmd, EXIT_USAGE, "--base '%s': expected fp32 or bf16", base);
    if (base && !strcmp(base, "bf16")) {
        const char *meth = opt_if_declared(a, "method");
        if (meth && strcmp(meth, "lora"))
            cli_die(a->cmd, EXIT_USAGE, "--base bf16 is for --method lora (a frozen base); hint: qlora has its own "
                    "4-bit base, and full / last-layers train base weights in fp32");
        cli_check(a->cmd, lorac_model_quantize(*m, LORAC_QF_BF16));
        print_quantized_base(*m, "base bf16");
        fprintf(stderr, "note: bf16 products %s\n",
                op_gemm_bf16_native() ? "native (oneDNN, AVX512-BF16)" : "emulated (widened to fp32)");
    }
    if (!tok) return;
    const char *tp = cli_str(a, "tokenizer", NULL);
    if (tp)
        cli_check(a->cmd, lorac_tokenizer_load(tp, tok));
    else if (ends_with(path, ".gguf"))
        cli_check(a->cmd, lorac_tokenizer_from_gguf((*m)->gguf, tok));
    else
        cli_check(a->cmd, lorac_tokenizer_load(path, tok));
}

void cli_add_head(const cli_args *a, lorac_model *m, int n_classes, uint64_t seed) {
    const char *preset = cli_str(a, "preset", NULL);
    const char *h = cli_str(a, "head-init", preset && !strcmp(preset, "appendix-e") ? "torch" : "hf");
    lorac_head_init init = LORAC_HEAD_INIT_HF;
    if (!strcmp(h, "torch")) init = LORAC_HEAD_INIT_TORCH;
    else if (strcmp(h, "hf")) cli_die(a->cmd, EXIT_USAGE, "--head-init '%s': expected hf or torch", h);
    /* transformers' decoder score heads have no bias; its encoder classifiers and nn.Linear do */
    const int bias = init == LORAC_HEAD_INIT_TORCH || m->cfg.arch == LORAC_ARCH_BERT;
    cli_check(a->cmd, lorac_model_add_head(m, n_classes, bias, init, seed));
}

void cli_lora_config(const cli_args *a, lorac_lora_config *c) {
    lorac_lora_config_default(c);
    const char *preset = cli_str(a, "preset", NULL);
    int appx = 0;
    if (preset) {
        if (strcmp(preset, "appendix-e")) cli_die(a->cmd, EXIT_USAGE, "--preset '%s' unknown; hint: appendix-e", preset);
        appx = 1;
    }
    c->r = cli_int(a, "r", appx ? 16 : 8, 1, 4096);
    c->alpha = (float)cli_num(a, "alpha", c->r, 1e-6, 1e6);
    c->dropout = (float)cli_num(a, "dropout", 0, 0, 0.999);
    c->use_rslora = cli_has(a, "rslora");
    c->split_fused = cli_has(a, "split-qkv") || appx;
    const char *re = cli_str(a, "target-regex", NULL);
    if (re) {
        if (strlen(re) >= sizeof c->target_regex) cli_die(a->cmd, EXIT_USAGE, "--target-regex is too long");
        snprintf(c->target_regex, sizeof c->target_regex, "%s", re);
    } else {
        const char *t = cli_str(a, "target", appx ? "all-linear,score" : "all-linear");
        cli_check(a->cmd, lorac_lora_parse_list(t, c->targets, &c->n_targets, "--target"));
    }
    const char *b = cli_str(a, "bias", "none");
    if (!strcmp(b, "none")) c->bias = LORAC_BIAS_NONE;
    else if (!strcmp(b, "all")) c->bias = LORAC_BIAS_ALL;
    else if (!strcmp(b, "lora_only")) c->bias = LORAC_BIAS_LORA_ONLY;
    else cli_die(a->cmd, EXIT_USAGE, "--bias '%s': expected none, all or lora_only", b);
    const char *mts = cli_str(a, "modules-to-save", NULL);
    if (mts) cli_check(a->cmd, lorac_lora_parse_list(mts, c->modules_to_save, &c->n_modules_to_save, "--modules-to-save"));
    const char *ly = cli_str(a, "layers", NULL);
    if (ly) cli_check(a->cmd, lorac_lora_parse_layers(ly, c));
    c->use_dora = cli_has(a, "dora");
    const char *rp = cli_str(a, "rank-pattern", NULL), *ap = cli_str(a, "alpha-pattern", NULL);
    if (rp) cli_check(a->cmd, lorac_lora_parse_patterns(rp, c->rank_pattern, &c->n_rank_pattern, 1, "--rank-pattern"));
    if (ap) cli_check(a->cmd, lorac_lora_parse_patterns(ap, c->alpha_pattern, &c->n_alpha_pattern, 0, "--alpha-pattern"));
    const char *in = cli_str(a, "init", NULL);
    if (in) cli_check(a->cmd, lorac_lora_init_parse(in, c));
    c->seed = cli_u64(a, "seed", 123);
}

cli_method cli_method_parse(const char *cmd, const char *flag, const char *s, int *n) {
    *n = 0;
    if (!strcmp(s, "lora")) return CLI_METHOD_LORA;
    if (!strcmp(s, "qlora")) return CLI_METHOD_QLORA;
    if (!strcmp(s, "full")) return CLI_METHOD_FULL;
    if (!strcmp(s, "head")) return CLI_METHOD_HEAD;
    if (!strcmp(s, "last-layers") || !strncmp(s, "last-layers:", 12)) {
        const char *v = s[11] ? s + 12 : s + 11;
        char *end = (char *)v;
        errno = 0;
        long x = *v ? strtol(v, &end, 10) : 0;
        if (end == v || *end || errno || x < 1 || x > 100000)
            cli_die(cmd, EXIT_USAGE, "%s '%s': expected last-layers:N with N a whole number >= 1; hint: last-layers:2 "
                    "trains the last two Linear modules (lm_head excluded), e.g. the last MLP projection and the head", flag, s);
        *n = (int)x;
        return CLI_METHOD_LAST_LAYERS;
    }
    cli_die(cmd, EXIT_USAGE, "%s '%s': expected lora, qlora, full, last-layers:N or head", flag, s);
}

static void save_module(const cli_args *a, lorac_lora_config *c, const char *name) {
    if (strlen(name) >= sizeof c->modules_to_save[0] || c->n_modules_to_save >= LORAC_MAX_TARGETS)
        cli_die(a->cmd, 1, "module name '%s' does not fit modules_to_save", name);
    strcpy(c->modules_to_save[c->n_modules_to_save++], name);
}

/* PEFT's task_type SEQ_CLS: the new classifier goes into modules_to_save. */
static void seq_cls_modules_to_save(const cli_args *a, const lorac_model *m, lorac_lora_config *c) {
    if (!m->head || cli_has(a, "modules-to-save") || lorac_lora_targets(c, m, m->head)) return;
    save_module(a, c, m->head->name);
    if (m->pre_head && m->pre_head_fresh && !lorac_lora_targets(c, m, m->pre_head)) save_module(a, c, m->pre_head->name);
    fprintf(stderr, "note: training the new classification head in full (PEFT's modules_to_save for SEQ_CLS)\n");
}

static void train_linear(const cli_args *a, lorac_linear *L) {
    cli_check(a->cmd, lorac_weight_make_trainable(L->W));
    if (L->b) cli_check(a->cmd, lorac_weight_make_trainable(L->b));
}

void cli_apply_method(const cli_args *a, lorac_model *m, lorac_lora_config *c, int seq_cls) {
    int n;
    const cli_method meth = cli_method_parse(a->cmd, "--method", cli_str(a, "method", "lora"), &n);
    quant_opts_need_qlora(a, meth == CLI_METHOD_QLORA);
    switch (meth) {
    case CLI_METHOD_QLORA:
        /* loaded quantized by cli_load_model; a model from elsewhere (info --config) is quantized here */
        (void)qformat_keep(a, m->path); /* a usage error for keep without a .gguf base */
        cli_check(a->cmd, lorac_model_quantize(m, LORAC_QF_NF4)); /* no-op for Linears already quantized */
        if (qembed_on(a)) cli_check(a->cmd, lorac_model_quantize_embedding(m, LORAC_QF_NF4)); /* ... or embedding */
        print_quantized_base(m, "qlora");
        if (seq_cls) seq_cls_modules_to_save(a, m, c);
        cli_check(a->cmd, lorac_lora_apply(m, c, NULL));
        break;
    case CLI_METHOD_LORA:
        if (seq_cls) seq_cls_modules_to_save(a, m, c);
        cli_check(a->cmd, lorac_lora_apply(m, c, NULL));
        break;
    case CLI_METHOD_FULL:
        cli_check(a->cmd, lorac_make_full_trainable(m));
        break;
    case CLI_METHOD_LAST_LAYERS:
        cli_check(a->cmd, lorac_make_last_layers_trainable(m, n));
        break;
    case CLI_METHOD_HEAD:
        if (!m->head) cli_die(a->cmd, EXIT_USAGE, "--method head needs a classification task");
        train_linear(a, m->head);
        if (m->pre_head && m->pre_head_fresh) train_linear(a, m->pre_head);
        break;
    }
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

void cli_print_trainable(const lorac_model *m, FILE *f) {
    int64_t t, all;
    char a[32], b[32];
    lorac_count_params(m, &t, &all);
    commas(a, sizeof a, t);
    commas(b, sizeof b, all);
    fprintf(f, "trainable params: %s || all params: %s || trainable%%: %.4f\n", a, b, all ? 100.0 * t / all : 0.0);
}

void cli_progress(const lorac_progress *p, void *ctx) {
    (void)ctx;
    static int tty = -1;
    if (tty < 0) tty = isatty(2);
    if (p->is_eval) {
        if (tty) fputc('\n', stderr);
        if (p->val_acc >= 0)
            fprintf(stderr, "epoch %d step %d: val loss %.4f, val accuracy %.2f%%\n", p->epoch, p->step, p->val_loss, 100 * p->val_acc);
        else
            fprintf(stderr, "epoch %d step %d: val loss %.4f (perplexity %.2f)\n", p->epoch, p->step, p->val_loss, exp(p->val_loss));
        return;
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
}

/* "NAME=TYPE:A*W,B*W" -> a combination of loaded adapters */
static void combine_one(const cli_args *a, lorac_adapter_set *set, const char *spec) {
    char buf[512], *names[64];
    float w[64];
    int n = 0;
    if (strlen(spec) >= sizeof buf) cli_die(a->cmd, EXIT_USAGE, "--combine '%.40s...' is too long", spec);
    strcpy(buf, spec);
    char *eq = strchr(buf, '='), *colon = eq ? strchr(eq, ':') : NULL;
    if (!eq || !colon)
        cli_die(a->cmd, EXIT_USAGE, "--combine '%s': expected NAME=TYPE:A*W,B*W, e.g. both=linear:spam*0.5,sent*0.5", spec);
    *eq = *colon = 0;
    for (char *tok = strtok(colon + 1, ","); tok && n < 64; tok = strtok(NULL, ",")) {
        char *star = strchr(tok, '*'), *end = NULL;
        if (star) *star = 0;
        w[n] = star ? strtof(star + 1, &end) : 1.0f;
        if (star && (end == star + 1 || *end))
            cli_die(a->cmd, EXIT_USAGE, "--combine '%s': weight '%s' of '%s' is not a number", spec, star + 1, tok);
        names[n++] = tok;
    }
    cli_check(a->cmd, lorac_adapters_combine(set, buf, (const char *const *)names, w, n, eq + 1));
}

const char *cli_load_adapters(const cli_args *a, lorac_model *m, lorac_adapter_set *set) {
    const char *ads[64], *combos[16];
    const int n = cli_all(a, "adapter", ads, 64), nc = cli_all(a, "combine", combos, 16);
    const char *use = cli_str(a, "use", NULL);
    lorac_adapters_init(set, m);
    if (n == 0 && (nc || use)) cli_die(a->cmd, EXIT_USAGE, "--use / --combine need adapters; hint: --adapter NAME=DIR");
    if (n == 0) return NULL;
    if (n == 1 && !nc && !use) { /* one adapter: applied directly, as lorac train left it */
        const char *eq = strchr(ads[0], '=');
        cli_check(a->cmd, lorac_adapter_load(m, eq ? eq + 1 : ads[0], NULL));
        return "default";
    }
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(ads[i], '=');
        char name[64];
        if (!eq || eq == ads[i] || (size_t)(eq - ads[i]) >= sizeof name)
            cli_die(a->cmd, EXIT_USAGE, "--adapter '%s': with several adapters each needs a name, NAME=DIR", ads[i]);
        memcpy(name, ads[i], (size_t)(eq - ads[i]));
        name[eq - ads[i]] = 0;
        cli_check(a->cmd, lorac_adapters_load(set, name, eq + 1));
    }
    for (int i = 0; i < nc; i++) combine_one(a, set, combos[i]);
    const char *active = use ? use : set->slot[0].name;
    cli_check(a->cmd, lorac_adapters_activate(set, active));
    if (set->active >= 0) fprintf(stderr, "%d adapters over one base; active: %s\n", set->n, active);
    else fprintf(stderr, "%d adapters over one base; all disabled (--use none)\n", set->n);
    return set->active >= 0 ? set->slot[set->active].name : NULL;
}
