/* lorac serve - an OpenAI-compatible HTTP server for a base model and its
 * adapters (include/lorac_serve.h does the work; this file reads flags). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lorac_serve.h"

static const cli_opt serve_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"tokenizer", "PATH", "tokenizer file or directory (default: the model's)"},
    {"base", "B", "auto | fp32 | gguf: a .gguf's weights kept in its own blocks (auto, gguf) or dequantized (fp32)"},
    {"adapter", "NAME=DIR", "load an adapter under NAME (repeatable); requests choose it with \"model\": \"NAME\""},
    {"host", "ADDR", "IPv4 address to listen on (default 127.0.0.1; 0.0.0.0 = every interface)"},
    {"port", "N", "TCP port (default 8080; 0 = any free port, printed on start)"},
    {"threads", "N", "compute threads (default: OMP_NUM_THREADS or all cores)"},
    {"max-body", "BYTES", "largest request body (default 1048576)"},
    {"max-prompt", "N", "most prompt tokens of a request (default 2048)"},
    {"max-tokens", "N", "largest max_tokens of a request (default 512)"},
    {"max-seqs", "N", "sequences generated together in one batch (default 8)"},
    {"max-queue", "N", "requests waiting for a free sequence before 429s (default 64)"},
    {"timeout", "S", "close a connection idle for S seconds (default 60)"},
    {NULL, NULL, NULL}};

static void on_ready(int port, void *user) {
    const lorac_serve_opts *o = user;
    fprintf(stderr, "lorac serve: listening on http://%s:%d (%d adapter%s; SIGTERM / Ctrl-C drains and exits)\n", o->host,
            port, o->n_adapters, o->n_adapters == 1 ? "" : "s");
}

int cmd_serve(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "serve", "usage: lorac serve --model PATH [--adapter NAME=DIR ...] [--host ADDR] [--port N] [options]",
              serve_opts, argc, argv);
    cli_set_threads(&a);
    lorac_serve_opts o;
    lorac_serve_opts_default(&o);
    o.model = cli_str(&a, "model", NULL);
    if (!o.model) cli_die("serve", EXIT_USAGE, "--model is required (a Hugging Face model directory or a .gguf file)");
    o.tokenizer = cli_str(&a, "tokenizer", NULL);
    o.base = cli_str(&a, "base", "auto");
    if (strcmp(o.base, "auto") && strcmp(o.base, "fp32") && strcmp(o.base, "gguf"))
        cli_die("serve", EXIT_USAGE, "--base '%s': expected auto, fp32 or gguf", o.base);
    const char *ads[LORAC_SERVE_MAX_ADAPTERS];
    static char names[LORAC_SERVE_MAX_ADAPTERS][64];
    o.n_adapters = cli_all(&a, "adapter", ads, LORAC_SERVE_MAX_ADAPTERS);
    for (int i = 0; i < o.n_adapters; i++) {
        const char *eq = strchr(ads[i], '=');
        if (!eq || eq == ads[i] || (size_t)(eq - ads[i]) >= sizeof names[i] || !eq[1])
            cli_die("serve", EXIT_USAGE, "--adapter '%s': expected NAME=DIR (requests name the adapter in \"model\")", ads[i]);
        memcpy(names[i], ads[i], (size_t)(eq - ads[i]));
        names[i][eq - ads[i]] = 0;
        o.adapter_names[i] = names[i];
        o.adapter_dirs[i] = eq + 1;
    }
    o.host = cli_str(&a, "host", o.host);
    o.port = cli_int(&a, "port", o.port, 0, 65535);
    o.threads = cli_int(&a, "threads", 0, 0, 1024);
    o.max_body = (size_t)cli_int(&a, "max-body", (int)o.max_body, 64, 1 << 30);
    o.max_prompt = cli_int(&a, "max-prompt", o.max_prompt, 1, 1 << 20);
    o.max_tokens = cli_int(&a, "max-tokens", o.max_tokens, 1, 1 << 20);
    o.max_seqs = cli_int(&a, "max-seqs", o.max_seqs, 1, 256);
    o.max_queue = cli_int(&a, "max-queue", o.max_queue, 0, 1 << 20);
    o.timeout_s = cli_int(&a, "timeout", o.timeout_s, 1, 86400);
    o.ready_fn = on_ready;
    o.ready_user = &o;
    cli_check("serve", lorac_serve_run(&o));
    fprintf(stderr, "lorac serve: drained, exiting\n");
    return 0;
}
