/* lorac generate - continue a prompt with the base model or with an adapter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_data.h"
#include "lora/adapter_io.h"
#include "lora/adapter_set.h"
#include "models/generate.h"

static const cli_opt gen_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"tokenizer", "PATH", "tokenizer file or directory (default: the model's)"},
    CLI_ADAPTER_OPTS,
    CLI_QBASE_OPTS,
    CLI_BASE_OPT,
    {"prompt", "TEXT", "the prompt text (default: empty, i.e. just BOS)"},
    {"chat", NULL, "write the prompt as a user message in the model's chat format, then the assistant's header;"
                   " stop at the end of the assistant's turn"},
    {"system", "TEXT", "with --chat: a system message first (default: the template's own, if it has one)"},
    CLI_CHAT_OPT,
    {"max-new", "N", "generate at most N tokens (default 64)"},
    {"temperature", "T", "0 = greedy (default 0)"},
    {"top-k", "K", "sample from the K most likely tokens (default off)"},
    {"top-p", "P", "nucleus sampling mass (default 1 = off)"},
    {"seed", "N", "sampling seed (default 42)"},
    {"stop", "TEXT", "stop at this token (default: the end-of-sequence token)"},
    {"ids", NULL, "print token ids instead of text"},
    {"no-kv-cache", NULL, "recompute the whole sequence for every token (the reference; slow)"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {NULL, NULL, NULL}};

typedef struct { const lorac_tokenizer *tok; int prev; int ids; } stream_ctx;

static int on_token(int id, void *vctx) {
    stream_ctx *c = vctx;
    if (c->ids) {
        printf("%d ", id);
    } else {
        char buf[256];
        size_t n = 0;
        if (lorac_tokenizer_decode_piece(c->tok, c->prev, id, buf, sizeof buf, &n) == LORAC_OK) fwrite(buf, 1, n, stdout);
    }
    fflush(stdout);
    c->prev = id;
    return 0;
}

int cmd_generate(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "generate", "usage: lorac generate --model PATH [--adapter [NAME=]DIR ...] [--use NAME] [--prompt TEXT] [options]", gen_opts, argc, argv);
    cli_set_threads(&a);
    (void)cli_qbase_is_qlora(&a); /* a usage error for a --method other than lora / qlora */
    lorac_model *m;
    lorac_tokenizer *tok;
    cli_load_model(&a, &m, &tok);
    lorac_adapter_set set;
    cli_load_adapters(&a, m, &set);

    lorac_gen_opts o;
    lorac_gen_opts_default(&o);
    o.max_new = cli_int(&a, "max-new", 64, 0, 1 << 20);
    o.temperature = (float)cli_num(&a, "temperature", 0, 0, 100);
    o.top_k = cli_int(&a, "top-k", 0, 0, 1 << 30);
    o.top_p = (float)cli_num(&a, "top-p", 1, 0, 1);
    o.seed = cli_u64(&a, "seed", 42);
    const char *stop = cli_str(&a, "stop", NULL);
    if (stop) {
        int id = lorac_tokenizer_find(tok, stop);
        if (id < 0) cli_die("generate", EXIT_USAGE, "--stop '%s' is not a single token of this tokenizer", stop);
        o.stop[o.n_stop++] = id;
    } else if (lorac_tokenizer_eos(tok) >= 0) {
        o.stop[o.n_stop++] = lorac_tokenizer_eos(tok);
    }
    const char *prompt = cli_str(&a, "prompt", "");
    lorac_chat_text chat = {0};
    if (cli_has(&a, "chat")) {
        lorac_chat_format f;
        cli_chat_format(&a, m, tok, &f);
        const char *sys = cli_str(&a, "system", NULL);
        const lorac_chat_msg msgs[2] = {{"system", (char *)sys}, {"user", (char *)prompt}};
        cli_check("generate", lorac_chat_render(&f, sys ? msgs : msgs + 1, sys ? 2 : 1, 1, &chat));
        int end = lorac_chat_end_of_turn(&f, tok);
        if (end >= 0 && end != lorac_tokenizer_eos(tok) && o.n_stop < 8) o.stop[o.n_stop++] = end;
        prompt = chat.text;
    } else if (cli_has(&a, "system")) {
        cli_die("generate", EXIT_USAGE, "--system needs --chat");
    }
    int *ids = NULL, n = 0;
    /* a chat format writes its own BOS, as apply_chat_template does */
    cli_check("generate", lorac_tokenizer_encode(tok, prompt, strlen(prompt), !chat.text, &ids, &n));
    if (n == 0) { /* nothing to condition on: start from BOS (or EOS as GPT-2 does) */
        int start = lorac_tokenizer_bos(tok) >= 0 ? lorac_tokenizer_bos(tok) : lorac_tokenizer_eos(tok);
        if (start < 0) cli_die("generate", EXIT_USAGE, "empty prompt and the tokenizer has no BOS token; hint: --prompt");
        free(ids);
        ids = malloc(sizeof(int));
        ids[0] = start;
        n = 1;
    }
    stream_ctx sc = {tok, ids[n - 1], cli_has(&a, "ids")};
    lorac_gen_seq q = {.prompt = ids, .n = n, .opts = &o, .fn = on_token, .ctx = &sc};
    cli_check("generate", cli_has(&a, "no-kv-cache") ? lorac_generate_recompute(m, &q) : lorac_generate_batch(m, &q, 1, NULL));
    putchar('\n');
    fflush(stdout);
    /* one line for scripts: prompt = the prompt's forward, generated = the steps after it */
    fprintf(stderr, "generate: prompt %d tokens %.3f s %.1f tok/s; generated %d tokens %.3f s %.1f tok/s\n", q.n_prompt,
            q.prompt_s, q.prompt_s > 0 ? q.n_prompt / q.prompt_s : 0.0, q.n_out, q.gen_s,
            q.gen_s > 0 ? q.n_out / q.gen_s : 0.0);
    free(q.out);
    free(ids);
    lorac_chat_text_free(&chat);
    lorac_tokenizer_free(tok);
    lorac_adapters_free(&set);
    lorac_model_free(m);
    return 0;
}
