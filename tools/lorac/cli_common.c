/* cli_common.c - the CLI's option parsing, errors and exits, opening a
 * model with its adapters through the public API, and a few file helpers
 * (path join, mkdir -p, atomic writes: the CLI's own copy of src/core's,
 * which are not public). */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void cli_die(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    fflush(stdout);
    fflush(stderr);
    if (cli_dist_quiet_error(code)) {
        cli_dist_fail(code);
        exit(code);
    }
    /* one rank of a data-parallel run says which it is, and ends them all */
    dprintf(cli_err_fd(), "lorac %s: %s", cmd, cli_dist_where());
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

void cli_set_threads(const cli_args *a) { lorac_set_threads(cli_int(a, "threads", 0, 1, 1024)); }

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
int cli_qformat_keep(const cli_args *a, const char *path) {
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
int cli_qembed_on(const cli_args *a) {
    const char *v = opt_if_declared(a, "qembed");
    if (!v || !strcmp(v, "on")) return 1;
    if (!strcmp(v, "off")) return 0;
    cli_die(a->cmd, EXIT_USAGE, "--qembed '%s': expected on or off", v);
}

/* --qformat / --qembed without --method qlora: a usage error. */
void cli_quant_opts_need_qlora(const cli_args *a, int qlora) {
    if (!qlora && (opt_if_declared(a, "qformat") || opt_if_declared(a, "qembed")))
        cli_die(a->cmd, EXIT_USAGE, "--%s is for --method qlora (the quantized base); hint: add --method qlora",
                opt_if_declared(a, "qformat") ? "qformat" : "qembed");
}

int cli_qbase_is_qlora(const cli_args *a) {
    const char *meth = cli_str(a, "method", "lora");
    if (strcmp(meth, "lora") && strcmp(meth, "qlora"))
        cli_die(a->cmd, EXIT_USAGE, "--method '%s': expected lora or qlora (the base the adapter was trained over)", meth);
    cli_quant_opts_need_qlora(a, !strcmp(meth, "qlora"));
    return !strcmp(meth, "qlora");
}

static int method_is_qlora(const cli_args *a) {
    const char *meth = opt_if_declared(a, "method");
    return meth && !strcmp(meth, "qlora");
}

void cli_print_quantized_base(const lorac_llm *llm, const char *label) {
    lorac_llm_info q = {.size = sizeof q};
    cli_check(label, lorac_llm_get_info(llm, &q));
    fprintf(stderr, "%s: %d Linears in %s, token embedding in %s; base %.4g MB (%.2f bits/param, %.3f bytes/param) "
            "instead of %.4g MB fp32; the Linears %.2f bits/param\n", label, q.quantized_linears,
            q.formats[0] ? q.formats : "-", q.embed_format, q.base_bytes / 1e6,
            q.base_params ? 8.0 * q.base_bytes / (double)q.base_params : 0.0,
            q.base_params ? q.base_bytes / (double)q.base_params : 0.0, 4.0 * (double)q.base_params / 1e6,
            q.quantized_params ? 8.0 * q.quantized_bytes / (double)q.quantized_params : 0.0);
    if (q.fallback)
        fprintf(stderr, "note: %d Linear%s could not keep the file's format and went to NF4 (%s%s)\n", q.fallback,
                q.fallback > 1 ? "s" : "", q.fallback_note, q.fallback > 1 ? "; ..." : "");
}

/* infer: generate / eval, whose --base also takes auto (the default) and gguf; the training commands open an
 * fp32 base unless --method qlora or --base bf16 says otherwise. */
static void open_model(const cli_args *a, int with_tok, int infer, lorac_llm **llm) {
    const char *path = cli_str(a, "model", NULL);
    if (!path) cli_die(a->cmd, EXIT_USAGE, "--model is required (a Hugging Face model directory or a .gguf file)");
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.base = LORAC_BASE_FP32;
    o.tokenizer = with_tok ? cli_str(a, "tokenizer", NULL) : NULL;
    o.no_tokenizer = !with_tok;
    const char *base = opt_if_declared(a, "base");
    if (infer && base && !strcmp(base, "auto")) base = NULL;
    if (method_is_qlora(a)) {
        if (infer && base)
            cli_die(a->cmd, EXIT_USAGE, "--base %s with --method qlora: qlora holds the base as it was trained over "
                    "(--qformat, --qembed); hint: drop --base", base);
        o.base = cli_qformat_keep(a, path) ? LORAC_BASE_GGUF : LORAC_BASE_NF4;
        o.embed_fp32 = !cli_qembed_on(a);
    } else if (infer && !base) {
        o.base = LORAC_BASE_AUTO;
    }
    if (infer && base && !strcmp(base, "gguf")) {
        if (!ends_with(path, ".gguf"))
            cli_die(a->cmd, EXIT_USAGE, "--base gguf keeps a .gguf file's own quantized blocks, and %s is no .gguf; hint: "
                    "--base fp32 or bf16 (or auto)", path);
        o.base = LORAC_BASE_GGUF;
        base = NULL;
    }
    if (base && strcmp(base, "fp32") && strcmp(base, "bf16"))
        cli_die(a->cmd, EXIT_USAGE, infer ? "--base '%s': expected auto, fp32, bf16 or gguf" : "--base '%s': expected fp32 or bf16",
                base);
    const int bf16 = base && !strcmp(base, "bf16");
    if (bf16) {
        const char *meth = opt_if_declared(a, "method");
        if (meth && strcmp(meth, "lora"))
            cli_die(a->cmd, EXIT_USAGE, "--base bf16 is for --method lora (a frozen base); hint: qlora has its own "
                    "4-bit base, and full / last-layers train base weights in fp32");
        o.base = LORAC_BASE_BF16;
    }
    cli_check(a->cmd, lorac_llm_open(path, &o, llm));
    if (bf16) {
        cli_print_quantized_base(*llm, "base bf16");
        lorac_llm_info q = {.size = sizeof q};
        cli_check(a->cmd, lorac_llm_get_info(*llm, &q));
        fprintf(stderr, "note: bf16 products %s\n", q.bf16_native ? "native (oneDNN, AVX512-BF16)" : "emulated (widened to fp32)");
    }
}

/* --labels / --target / --modules-to-save: a comma-separated list of names
 * (1..95 characters, spaces around them dropped, at most 32), as the
 * library parses it; a usage error naming the flag. */
void cli_check_list(const cli_args *a, const char *flag, const char *s) {
    int n = 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len == 0 || len >= 96)
            cli_die(a->cmd, EXIT_USAGE, "%s: empty or too long name in '%s'; hint: a comma-separated list like "
                    "q_proj,v_proj", flag, s);
        if (++n > 32) cli_die(a->cmd, EXIT_USAGE, "%s: more than %d names", flag, 32);
        if (!e) break;
        p = e + 1;
    }
}

/* The base an inference command runs, one line on stderr: a decoding step's speed follows its bytes. */
void cli_print_base(const cli_args *a, const lorac_llm *llm) {
    const char *base = opt_if_declared(a, "base");
    if (base && !strcmp(base, "bf16")) return; /* open_model said it already */
    const int is_auto = (!base || !strcmp(base, "auto")) && !method_is_qlora(a);
    lorac_llm_info q = {.size = sizeof q};
    cli_check(a->cmd, lorac_llm_get_info(llm, &q));
    static const char *const names[] = {"fp32", "bf16", "nf4", "gguf", "auto"};
    if (q.base == LORAC_BASE_FP32)
        fprintf(stderr, "base fp32%s\n", is_auto ? " (--base auto: not a .gguf)" : "");
    else
        fprintf(stderr, "base %s%s: %d Linears in %s, token embedding in %s, lm_head in %s; %.4g MB\n", names[q.base],
                is_auto ? " (--base auto: the .gguf's own blocks)" : "", q.quantized_linears,
                q.formats[0] ? q.formats : "-", q.embed_format, q.head_format[0] ? q.head_format : "-", q.base_bytes / 1e6);
    if (q.fallback)
        fprintf(stderr, "note: %d Linear%s could not keep the file's format and went to NF4 (%s%s)\n", q.fallback,
                q.fallback > 1 ? "s" : "", q.fallback_note, q.fallback > 1 ? "; ..." : "");
}

void cli_open(const cli_args *a, int with_tok, lorac_llm **llm) { open_model(a, with_tok, 0, llm); }

void cli_open_infer(const cli_args *a, int with_tok, lorac_llm **llm) { open_model(a, with_tok, 1, llm); }

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

/* "NAME=TYPE:A*W,B*W" -> a combination of loaded adapters */
static void combine_one(const cli_args *a, lorac_llm *llm, const char *spec) {
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
    cli_check(a->cmd, lorac_llm_adapter_combine(llm, buf, (const char *const *)names, w, n, eq + 1));
}

const char *cli_load_adapters(const cli_args *a, lorac_llm *llm) {
    const char *ads[64], *combos[16];
    const int n = cli_all(a, "adapter", ads, 64), nc = cli_all(a, "combine", combos, 16);
    const char *use = cli_str(a, "use", NULL);
    if (n == 0 && (nc || use)) cli_die(a->cmd, EXIT_USAGE, "--use / --combine need adapters; hint: --adapter NAME=DIR");
    if (n == 0) return NULL;
    if (n == 1 && !nc && !use) { /* one adapter: applied directly, as lorac train left it */
        const char *eq = strchr(ads[0], '=');
        cli_check(a->cmd, lorac_llm_adapter_apply(llm, eq ? eq + 1 : ads[0]));
        return "default";
    }
    static char first[64];
    for (int i = 0; i < n; i++) {
        const char *eq = strchr(ads[i], '=');
        char name[64];
        if (!eq || eq == ads[i] || (size_t)(eq - ads[i]) >= sizeof name)
            cli_die(a->cmd, EXIT_USAGE, "--adapter '%s': with several adapters each needs a name, NAME=DIR", ads[i]);
        memcpy(name, ads[i], (size_t)(eq - ads[i]));
        name[eq - ads[i]] = 0;
        cli_check(a->cmd, lorac_llm_adapter_load(llm, name, eq + 1));
        if (i == 0) snprintf(first, sizeof first, "%s", name);
    }
    for (int i = 0; i < nc; i++) combine_one(a, llm, combos[i]);
    const char *active = use ? use : first;
    cli_check(a->cmd, lorac_llm_adapter_use(llm, active));
    static lorac_llm_info info;
    info.size = sizeof info;
    cli_check(a->cmd, lorac_llm_get_info(llm, &info));
    if (info.active_adapter[0]) fprintf(stderr, "%d adapters over one base; active: %s\n", info.n_adapters, active);
    else fprintf(stderr, "%d adapters over one base; all disabled (--use none)\n", info.n_adapters);
    return info.active_adapter[0] ? info.active_adapter : NULL;
}

/* ---- files ---- */

char *cli_path_join(char *buf, size_t n, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    snprintf(buf, n, "%s%s%s", dir, (dl && dir[dl - 1] == '/') ? "" : "/", name);
    return buf;
}

int cli_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void cli_mkdirs(const char *cmd, const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) cli_die(cmd, EXIT_USAGE, "bad directory name '%s'", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) { /* each prefix ending at a '/', then the whole */
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) cli_die(cmd, 1, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) cli_die(cmd, 1, "%s: exists and is not a directory", dir);
}

void cli_write_atomic_stream(const char *cmd, const char *path, int (*fn)(void *ctx, FILE *f), void *ctx) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        cli_die(cmd, EXIT_USAGE, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) cli_die(cmd, 1, "%s: cannot create: %s", tmp, strerror(errno));
    int bad = fn(ctx, f);
    if (!bad && fflush(f) != 0) bad = 1;
    if (!bad && fsync(fileno(f)) != 0) bad = 1; /* on disk before the rename makes it visible */
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        cli_die(cmd, 1, "%s: write failed (%s); the previous file, if any, is untouched", path,
                err ? strerror(err) : "writer error");
    }
    if (rename(tmp, path) != 0) {
        err = errno;
        unlink(tmp);
        cli_die(cmd, 1, "%s: rename failed: %s", path, strerror(err));
    }
}

typedef struct {
    const void *d;
    size_t n;
} buf_ctx;

static int write_buf(void *ctx, FILE *f) {
    const buf_ctx *b = ctx;
    return b->n && fwrite(b->d, 1, b->n, f) != b->n;
}

void cli_write_atomic(const char *cmd, const char *path, const void *data, size_t len) {
    buf_ctx b = {data, len};
    cli_write_atomic_stream(cmd, path, write_buf, &b);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

size_t cli_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}
