/* lorac generate - continue a prompt with the base model or with an
 * adapter. On the public API only (lorac_llm_generate_ids). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_opt gen_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"tokenizer", "PATH", "tokenizer file or directory (default: the model's)"},
    CLI_ADAPTER_OPTS,
    CLI_QBASE_OPTS,
    CLI_INFER_BASE_OPT,
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

static int on_token(int id, const char *piece, size_t len, void *user) {
    if (*(const int *)user) printf("%d ", id);
    else fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

/* The names --chat-format takes (the library's chat families, and auto). */
static void check_chat_format(const char *name) {
    static const char *const names[] = {"auto", "chatml", "llama3", "gemma", "phi3", "mistral", "llama2", "alpaca"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) return;
    cli_die("generate", EXIT_USAGE, "--chat-format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, llama2 or "
            "alpaca", name);
}

int cmd_generate(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "generate", "usage: lorac generate --model PATH [--adapter [NAME=]DIR ...] [--use NAME] [--prompt TEXT] [options]", gen_opts, argc, argv);
    cli_set_threads(&a);
    (void)cli_qbase_is_qlora(&a); /* a usage error for a --method other than lora / qlora */
    lorac_llm *llm;
    cli_open_infer(&a, 1, &llm);
    const lorac_tok *tok = lorac_llm_tok(llm);
    cli_load_adapters(&a, llm);

    lorac_gen_params o;
    lorac_gen_params_init(&o);
    o.max_new = cli_int(&a, "max-new", 64, 0, 1 << 20);
    o.temperature = (float)cli_num(&a, "temperature", 0, 0, 100);
    o.top_k = cli_int(&a, "top-k", 0, 0, 1 << 30);
    o.top_p = (float)cli_num(&a, "top-p", 1, 0, 1);
    o.seed = cli_u64(&a, "seed", 42);
    o.no_eos_stop = 1; /* the stops are set here */
    const char *stop = cli_str(&a, "stop", NULL);
    if (stop) {
        int id = lorac_tok_find(tok, stop);
        if (id < 0) cli_die("generate", EXIT_USAGE, "--stop '%s' is not a single token of this tokenizer", stop);
        o.stop[o.n_stop++] = id;
    } else if (lorac_tok_eos(tok) >= 0) {
        o.stop[o.n_stop++] = lorac_tok_eos(tok);
    }
    const char *prompt = cli_str(&a, "prompt", "");
    char *chat = NULL;
    if (cli_has(&a, "chat")) {
        const char *name = cli_str(&a, "chat-format", "auto");
        check_chat_format(name);
        const char *sys = cli_str(&a, "system", NULL);
        const lorac_chat_message msgs[2] = {{"system", sys}, {"user", prompt}};
        lorac_chat_info ci;
        cli_check("generate", lorac_llm_chat(llm, name, sys ? msgs : msgs + 1, sys ? 2 : 1, 1, &chat, &ci));
        fprintf(stderr, "chat format: %s (%s)%s%s%s\n", ci.family,
                ci.from_template ? ci.source : !strcmp(name, "auto") ? "the model has no chat template" : "--chat-format",
                ci.default_system[0] ? "; default system message \"" : "", ci.default_system,
                ci.default_system[0] ? "\"" : "");
        if (ci.end_of_turn >= 0 && ci.end_of_turn != lorac_tok_eos(tok) && o.n_stop < 8) o.stop[o.n_stop++] = ci.end_of_turn;
        prompt = chat;
    } else if (cli_has(&a, "system")) {
        cli_die("generate", EXIT_USAGE, "--system needs --chat");
    }
    int *ids = NULL, n = 0;
    /* a chat format writes its own BOS, as apply_chat_template does */
    cli_check("generate", lorac_tok_encode(tok, prompt, strlen(prompt), !chat, &ids, &n));
    if (n == 0) { /* nothing to condition on: start from BOS (or EOS as GPT-2 does) */
        int start = lorac_tok_bos(tok) >= 0 ? lorac_tok_bos(tok) : lorac_tok_eos(tok);
        if (start < 0) cli_die("generate", EXIT_USAGE, "empty prompt and the tokenizer has no BOS token; hint: --prompt");
        lorac_free(ids);
        ids = malloc(sizeof(int));
        ids[0] = start;
        n = 1;
    }
    int print_ids = cli_has(&a, "ids");
    o.no_kv_cache = cli_has(&a, "no-kv-cache");
    cli_print_base(&a, llm);
    lorac_gen_stats st;
    cli_check("generate", lorac_llm_generate_ids(llm, ids, n, &o, on_token, &print_ids, NULL, NULL, &st));
    putchar('\n');
    fflush(stdout);
    /* one line for scripts: prompt = the prompt's forward, generated = the steps after it */
    fprintf(stderr, "generate: prompt %d tokens %.3f s %.1f tok/s; generated %d tokens %.3f s %.1f tok/s\n",
            st.prompt_tokens, st.prompt_seconds, st.prompt_seconds > 0 ? st.prompt_tokens / st.prompt_seconds : 0.0,
            st.gen_tokens, st.gen_seconds, st.gen_seconds > 0 ? st.gen_tokens / st.gen_seconds : 0.0);
    free(ids);
    lorac_free(chat);
    lorac_llm_close(llm);
    return 0;
}
