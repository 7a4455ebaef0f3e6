/* lorac tokenize - text to token ids and back, with a model's tokenizer.
 *
 * Prints the ids on one line separated by single spaces, without the
 * special tokens a model adds around a prompt (no BOS), as llama.cpp's
 * llama-tokenize --ids and Hugging Face's encode(text,
 * add_special_tokens=False) do; special-token strings written in the text
 * ("<|im_start|>") still become their ids. Only the tokenizer is read: a
 * .gguf's metadata, or the tokenizer files of a directory, never the
 * weights. On the public API only (lorac_tok_*). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_opt tok_opts[] = {
    {"model", "PATH", "model: Hugging Face directory or .gguf file (its tokenizer is used)"},
    {"tokenizer", "PATH", "a tokenizer without weights: tokenizer.json, vocab.json, tokenizer.model, vocab.txt,"
                          " a directory holding one, or a .gguf (overrides --model's)"},
    {"text", "TEXT", "the text to tokenize; - reads it from standard input"},
    {"decode", "\"ID ID ...\"", "print the text of these ids instead (spaces or commas between them)"},
    {"add-special", NULL, "--text: add the model's special tokens too (BOS ...), as add_special_tokens=True"},
    {"skip-special", NULL, "--decode: leave special tokens out, as skip_special_tokens=True"},
    {NULL, NULL, NULL}};

static const char *tok_usage =
    "usage: lorac tokenize (--model PATH | --tokenizer PATH) (--text TEXT | --text - | --decode \"ID ID ...\")\n\n"
    "Prints the token ids of TEXT on one line, separated by single spaces (no BOS\n"
    "or other special tokens added unless --add-special; special-token strings in\n"
    "the text map to their ids), or with --decode the text of the ids.";

/* The tokenizer of --tokenizer, else of --model: a GGUF's metadata, or
 * whatever lorac_tok_open finds at the path. */
static lorac_tok *load(const cli_args *a) {
    const char *path = cli_str(a, "tokenizer", cli_str(a, "model", NULL));
    if (!path) cli_die(a->cmd, EXIT_USAGE, "--model or --tokenizer is required (a model directory, .gguf or tokenizer file)");
    lorac_tok *t = NULL;
    cli_check(a->cmd, lorac_tok_open(path, &t));
    return t;
}

/* All of standard input, as bytes (a NUL inside is kept). */
static char *read_stdin(const char *cmd, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) cli_die(cmd, 1, "out of memory reading standard input");
        n += fread(buf + n, 1, cap - n, stdin);
        if (n < cap) break;
        cap *= 2;
        buf = realloc(buf, cap);
    }
    if (ferror(stdin)) cli_die(cmd, 1, "standard input: read error: %s", strerror(errno));
    *len = n;
    return buf;
}

static void print_ids(const char *cmd, const lorac_tok *t, const char *text, size_t len, int add_special) {
    int *ids, n;
    cli_check(cmd, lorac_tok_encode(t, text, len, add_special, &ids, &n));
    for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    putchar('\n');
    lorac_free(ids);
}

/* "12 7, 99" -> ids; anything but integers, spaces and commas is a usage error. */
static int *parse_ids(const char *cmd, const char *s, int *n) {
    size_t cap = strlen(s) / 2 + 1;
    int *ids = malloc(cap * sizeof *ids);
    if (!ids) cli_die(cmd, 1, "out of memory");
    *n = 0;
    for (const char *p = s; *p;) {
        if (isspace((unsigned char)*p) || *p == ',') {
            p++;
            continue;
        }
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > 0x7fffffff ||
            (*end && !isspace((unsigned char)*end) && *end != ','))
            cli_die(cmd, EXIT_USAGE, "--decode: '%.20s' is not a token id; hint: ids are integers separated by "
                    "spaces, e.g. --decode \"9707 1879\"", p);
        ids[(*n)++] = (int)v;
        p = end;
    }
    return ids;
}

static void print_text(const char *cmd, const lorac_tok *t, const char *list, int skip_special) {
    int n;
    int *ids = parse_ids(cmd, list, &n);
    char *text;
    size_t len;
    cli_check(cmd, lorac_tok_decode(t, ids, n, skip_special, &text, &len));
    fwrite(text, 1, len, stdout);
    putchar('\n');
    lorac_free(text);
    free(ids);
}

int cmd_tokenize(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "tokenize", tok_usage, tok_opts, argc, argv);
    const char *text = cli_str(&a, "text", NULL), *decode = cli_str(&a, "decode", NULL);
    if (!text == !decode)
        cli_die(a.cmd, EXIT_USAGE, "give exactly one of --text TEXT (or --text - for standard input) and --decode \"ID ...\"");
    if (decode && cli_has(&a, "add-special")) cli_die(a.cmd, EXIT_USAGE, "--add-special is for --text");
    if (text && cli_has(&a, "skip-special")) cli_die(a.cmd, EXIT_USAGE, "--skip-special is for --decode");
    lorac_tok *t = load(&a);
    if (decode) {
        print_text(a.cmd, t, decode, cli_has(&a, "skip-special"));
    } else if (!strcmp(text, "-")) {
        size_t len;
        char *in = read_stdin(a.cmd, &len);
        print_ids(a.cmd, t, in, len, cli_has(&a, "add-special"));
        free(in);
    } else {
        print_ids(a.cmd, t, text, strlen(text), cli_has(&a, "add-special"));
    }
    lorac_tok_close(t);
    if (fflush(stdout) != 0) cli_die(a.cmd, 1, "standard output: write error: %s", strerror(errno));
    return 0;
}
