/* cli.h - shared plumbing of the lorac command-line tool: option tables and
 * parsing, loading a model with its tokenizer, LoRA flags, progress output.
 * The CLI is the only code that prints to the user or calls exit().
 * Exit codes: 0 success, 1 runtime error (bad file, bad data, numerics),
 * 2 usage error (bad flag or value). */
#ifndef LORAC_CLI_H
#define LORAC_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lorac.h"

#define EXIT_USAGE 2

typedef struct cli_opt {
    const char *name;  /* without the leading "--" */
    const char *arg;   /* metavar, or NULL for a switch */
    const char *help;
} cli_opt;

typedef struct cli_args {
    const char *cmd;
    const cli_opt *opts;
    int n_opts;
    const char *values[128]; /* per option index: the value ("1" for switches), NULL if absent */
    int occ_opt[64];          /* every occurrence of a valued option, in order (for repeatable ones) */
    const char *occ_val[64];
    int n_occ;
} cli_args;

/* Parse argv against opts (ends with a {NULL} entry). Prints usage and
 * exits on --help (0) or on a bad flag (2). */
void cli_parse(cli_args *a, const char *cmd, const char *usage, const cli_opt *opts, int argc, char **argv);
const char *cli_str(const cli_args *a, const char *name, const char *def);
int cli_has(const cli_args *a, const char *name);
/* Every value given to a repeatable option, in order; returns the count (<= max). */
int cli_all(const cli_args *a, const char *name, const char **out, int max);
int cli_int(const cli_args *a, const char *name, int def, int lo, int hi);
double cli_num(const cli_args *a, const char *name, double def, double lo, double hi);
uint64_t cli_u64(const cli_args *a, const char *name, uint64_t def);

/* ---- data-parallel runs (cli_dist.c) ---- */
/* The job's ranks when lorac train runs under mpirun / srun, else NULL
 * (lorac.h's lorac_ranks: NULL is the one process). */
extern lorac_ranks *cli_ranks;
/* Start the ranks (--dist-timeout S bounds each wait for the others); rank
 * 0 goes on as usual, the others are silent but for errors. ckpt_hint ends
 * the line a rank prints when the launcher stops it (SIGTERM). */
void cli_dist_start(const cli_args *a, const char *ckpt_hint);
/* 1 on the rank that prints and writes (rank 0, or the single process). */
int cli_is_writer(void);
/* Finalize the ranks (every rank calls it at the end). */
void cli_dist_end(void);
/* Under mpirun / srun with several ranks, a command other than train is
 * refused (rank 0 says so); returns the exit code, or -1 to go on. */
int cli_dist_refuse(const char *cmd);
/* After an error on this rank: a usage error (EXIT_USAGE, met by every
 * rank alike) finalizes this rank; any other ends the whole job at once.
 * No-op in one process. */
void cli_dist_fail(int code);
/* 1 when this rank's error line would repeat rank 0's (a usage error on
 * another rank): cli_die then prints nothing. */
int cli_dist_quiet_error(int code);
/* The descriptor this rank's error lines go to (stderr as started). */
int cli_err_fd(void);
/* "rank R of N (HOST): " in a data-parallel run, else "". */
const char *cli_dist_where(void);

/* Print "lorac CMD: <msg>" to stderr and exit(code) (in a data-parallel run,
 * "lorac CMD: rank R of N (HOST): <msg>", and every rank ends). */
void cli_die(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
/* Die with the library's last error if st != OK. */
void cli_check(const char *cmd, lorac_status st);

/* Small file helpers (the library keeps its own in src/core, which is not
 * public; these few lines are the CLI's copy). Each dies with one line
 * naming the path on failure. */
char *cli_path_join(char *buf, size_t n, const char *dir, const char *name); /* dir/name into buf */
int cli_file_exists(const char *path);
void cli_mkdirs(const char *cmd, const char *dir); /* mkdir -p */
/* Write path through a temporary file (fsync, rename): a reader sees the
 * old file or the new one, never a torn one. fn returns non-zero on a write error. */
void cli_write_atomic_stream(const char *cmd, const char *path, int (*fn)(void *ctx, FILE *f), void *ctx);
void cli_write_atomic(const char *cmd, const char *path, const void *data, size_t len);
double cli_now(void);        /* seconds, monotonic */
size_t cli_peak_rss(void);   /* bytes: this process's peak resident set */

/* Threads for OpenMP and OpenBLAS (--threads, else OMP_NUM_THREADS, else all cores). */
void cli_set_threads(const cli_args *a);

/* Open --model (dir or .gguf) with its tokenizer (--tokenizer overrides;
 * with_tok = 0: none is read, lorac_llm_tok is then NULL). With --method
 * qlora (where the command has that option) the block Linears are
 * quantized while loading (--qformat: NF4 or the GGUF's blocks; --qembed);
 * with --base bf16 they are rounded to bf16, and two lines say so. */
void cli_open(const cli_args *a, int with_tok, lorac_llm **llm);
/* cli_open for the commands that only run the model (generate, eval): its
 * --base (CLI_INFER_BASE_OPT) is auto by default, i.e. a .gguf keeps its
 * own GGML blocks (LORAC_BASE_AUTO). Training commands keep cli_open: fp32
 * unless --method qlora. */
void cli_open_infer(const cli_args *a, int with_tok, lorac_llm **llm);
/* "base gguf (--base auto: ...): N Linears in Q4_1, token embedding in Q8_0,
 * lm_head in Q8_0; X MB" or "base fp32" on stderr: which base runs (called
 * once the usage checks are done, so an error stays one line). */
void cli_print_base(const cli_args *a, const lorac_llm *llm);
/* "LABEL: N Linears in NF4, base X MB (Y bits/param) ..." for a quantized
 * (qlora) or bf16 base, to stderr. */
void cli_print_quantized_base(const lorac_llm *llm, const char *label);

/* --qformat / --qembed: how a qlora base is quantized (cli_load_model). */
#define CLI_QUANT_OPTS                                                                                            \
    {"qformat", "F", "qlora's base: nf4 (bitsandbytes NF4, default for safetensors) | keep (a .gguf file's own"   \
                     " GGML blocks: Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K IQ4_NL IQ4_XS; default for .gguf)"},       \
    {"qembed", "on|off", "qlora: quantize the token embedding (and a tied LM head) like the Linears (on, default)"  \
                         " or keep it fp32 as bitsandbytes does (off)"}

/* eval / generate / merge: the base held as the adapter was trained over it. */
#define CLI_QBASE_OPTS                                                                                            \
    {"method", "M", "the base the adapter was trained over: lora (default: the base --base says) | qlora"         \
                    " (quantized as lorac train --method qlora held it, same --qformat / --qembed)"},            \
    CLI_QUANT_OPTS
/* --qformat for a qlora base at path: 1 = keep the GGUF blocks, 0 = NF4
 * (keep without a .gguf is a usage error). */
int cli_qformat_keep(const cli_args *a, const char *path);
/* --qembed: 1 = quantize the token embedding (default), 0 = keep it fp32. */
int cli_qembed_on(const cli_args *a);
/* --qformat / --qembed without --method qlora: a usage error. */
void cli_quant_opts_need_qlora(const cli_args *a, int qlora);
/* --chat-format: how instruction data and generate --chat are written (io/chat.h). */
#define CLI_CHAT_OPT                                                                                              \
    {"chat-format", "F", "instruction / chat text: auto (the model's chat template, else alpaca; default) | chatml"  \
                         " | llama3 | gemma | phi3 | mistral | llama2 | alpaca"}

/* --method of CLI_QBASE_OPTS: 1 for qlora, 0 for lora; anything else is a usage error. */
int cli_qbase_is_qlora(const cli_args *a);

/* --base of generate / eval (cli_open_infer). */
#define CLI_INFER_BASE_OPT                                                                                        \
    {"base", "DTYPE", "how the base's Linears are held: auto (default: a .gguf's own quantized blocks, else fp32)"  \
                      " | fp32 (a .gguf dequantized at load) | bf16 | gguf (the .gguf's blocks, its untied LM head's"  \
                      " too)"}

/* --base: how the frozen base's block Linears are held (cli_load_model). */
#define CLI_BASE_OPT                                                                                              \
    {"base", "DTYPE", "frozen base Linears: fp32 (default) | bf16 (half the memory; bf16 products, fp32"          \
                      " accumulation; fastest on CPUs with AVX512-BF16)"}

/* The LoRA options shared by train / info / modules. */
#define CLI_LORA_OPTS                                                                                             \
    {"r", "N", "LoRA rank (default 8; appendix-e: 16)"},                                                         \
    {"alpha", "X", "lora_alpha; scale = alpha/r (default = r)"},                                                 \
    {"dropout", "P", "lora_dropout (default 0)"},                                                                \
    {"target", "LIST", "target_modules: names matched exactly or as a suffix, or all-linear (default all-linear)"}, \
    {"target-regex", "RE", "target_modules as one regex matched against the full module name"},                  \
    {"bias", "MODE", "none | all | lora_only (default none)"},                                                   \
    {"modules-to-save", "LIST", "modules trained in full, e.g. score"},                                          \
    {"rslora", NULL, "scale = alpha/sqrt(r) (rank-stabilised LoRA)"},                                            \
    {"layers", "LIST", "layers_to_transform, e.g. 0,1,2"},                                                       \
    {"split-qkv", NULL, "one rank-r pair for each of q, k, v inside GPT-2's fused c_attn (loralib MergedLinear)"}, \
    {"dora", NULL, "DoRA (use_dora): a trained magnitude per output row over the normalised W + s B A"},         \
    {"rank-pattern", "K=R,..", "rank_pattern: r per module, key matched as PEFT does (name ends in .K or is K)"}, \
    {"alpha-pattern", "K=A,..", "alpha_pattern: lora_alpha per module, matched as --rank-pattern"},             \
    {"init", "I", "init_lora_weights: true (default) | false | gaussian | pissa | pissa_niter_K | olora"},       \
    {"preset", "NAME", "appendix-e: r 16, alpha 16, every Linear incl. the head, split q/k/v,"                   \
                       " AdamW lr 8e-4, wd 0.1, batch 8, 5 epochs (LLMs-from-scratch appendix E)"},              \
    {"method", "M", "lora (default) | qlora (LoRA over a 4-bit frozen base) | full | last-layers:N | head"},      \
    {"head-init", "H", "a new classification head as hf (transformers: N(0, initializer_range), decoders' score"   \
                       " without bias; default) or torch (nn.Linear with bias; appendix-e's)"},                    \
    CLI_QUANT_OPTS,                                                                                               \
    CLI_BASE_OPT

/* lorac train's options; lorac compare accepts them all and passes them on. */
extern const cli_opt cli_train_opts[];
/* The LoRA and method flags (after --preset) into c's fields: method, r,
 * alpha, dropout, target(-regex), bias, modules_to_save, rslora, layers,
 * split_qkv, dora, the patterns, init, head_init, seed. The list flags'
 * syntax is checked here, with the flag's name in the message. */
void cli_train_config(const cli_args *a, lorac_train_config *c);
/* lorac info / modules: the LoRA flags alone (after --preset) into c's
 * fields, c->method left NULL: r .. init as cli_train_config reads them,
 * then seed; the library checks --layers, --init and --target-regex at
 * once (lorac_train_config_check), so the first bad flag is the one named. */
void cli_lora_flags(const cli_args *a, lorac_train_config *c);
/* A comma-separated list of names (--target, --labels, ...) as the library
 * parses it; a usage error naming flag. */
void cli_check_list(const cli_args *a, const char *flag, const char *s);
/* Print "trainable params: X || all params: Y || trainable%: Z" (PEFT's line). */
void cli_print_params(const char *cmd, const lorac_llm *llm, FILE *f);
/* Progress of lorac_llm_fit: a bar on a terminal, plain lines otherwise; never cancels. */
int cli_progress(const lorac_train_progress *p, void *ctx);

/* The training methods of --method (and of compare's --methods). */
typedef enum { CLI_METHOD_LORA, CLI_METHOD_FULL, CLI_METHOD_HEAD, CLI_METHOD_LAST_LAYERS, CLI_METHOD_QLORA } cli_method;
/* Parse one method: "lora", "qlora", "full", "head" or "last-layers:N" (N >= 1,
 * put in *n; 0 otherwise). Anything else is a usage error naming `flag`. */
cli_method cli_method_parse(const char *cmd, const char *flag, const char *s, int *n);
/* Adapters for eval / generate: one --adapter DIR, or several --adapter
 * NAME=DIR over one base with --use NAME picking the active one and
 * --combine NAME=TYPE:A*W,B*W adding PEFT-style weighted combinations. */
#define CLI_ADAPTER_OPTS                                                                                          \
    {"adapter", "[NAME=]DIR", "adapter directory; repeat as NAME=DIR to load several over one base"},             \
    {"use", "NAME", "the active adapter when several are loaded (default: the first; none = the base alone)"},   \
    {"combine", "NAME=TYPE:A*W,B*W", "add a weighted combination of loaded adapters (TYPE linear or cat, as PEFT)"}
/* Load what CLI_ADAPTER_OPTS ask for into llm: one adapter applied straight
 * onto the base (lorac_llm_adapter_apply), or several by name with --use /
 * --combine. Returns the active name or NULL. */
const char *cli_load_adapters(const cli_args *a, lorac_llm *llm);

#endif
