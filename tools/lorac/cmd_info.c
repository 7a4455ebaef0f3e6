/* lorac info / lorac modules - what a model holds and what LoRA would train.
 * On the public API alone: the model (lorac_llm_create for a config.json
 * alone, lorac_llm_add_head), the LoRA flags as a lorac_train_config
 * (cli_lora_flags), the method applied without a data set
 * (lorac_llm_apply_method: PEFT's task_type None; qlora over a base held
 * in NF4, lorac_llm_quantize_nf4), the module tree (lorac_llm_param), the
 * modules with their roles and what --target gives each
 * (lorac_llm_module_target), the "LoRA kind" line (lorac_train_config_lora),
 * the parameter counts and a GGUF adapter's header (lorac_lorafile). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_opt info_opts[] = {
    {"model", "PATH", "Hugging Face directory or .gguf file"},
    {"config", "FILE", "a config.json alone: random weights of the real shapes (for parameter counts)"},
    {"num-classes", "N", "add a classification head 'score' with N classes"},
    CLI_LORA_OPTS,
    {"seed", "N", "seed for the LoRA init (default 123)"},
    {"tree", NULL, "print every module with its shapes (info prints it by default)"},
    {"threads", "N", "threads"},
    {NULL, NULL, NULL}};

static lorac_llm *load(const cli_args *a) {
    lorac_llm *llm;
    const char *cfg = cli_str(a, "config", NULL);
    if (cfg) cli_check(a->cmd, lorac_llm_create(cfg, &llm));
    else cli_open(a, 0, &llm);
    int nc = cli_int(a, "num-classes", 0, 0, 100000);
    if (nc) { /* --head-init (appendix-e's default: torch), as lorac train adds a head */
        const char *preset = cli_str(a, "preset", NULL);
        const char *h = cli_str(a, "head-init", preset && !strcmp(preset, "appendix-e") ? "torch" : "hf");
        if (strcmp(h, "torch") && strcmp(h, "hf")) cli_die(a->cmd, EXIT_USAGE, "--head-init '%s': expected hf or torch", h);
        cli_check(a->cmd, lorac_llm_add_head(llm, nc, h, 1));
    }
    return llm;
}

/* A GGUF LoRA adapter (lorac export, convert_lora_to_gguf.py): its header
 * and tensors as lorac's GGUF reader sees them. Returns 0 if not an adapter
 * (the path is then loaded as a model, which reports a bad file). */
static int adapter_gguf(const char *path) {
    size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 5, ".gguf")) return 0;
    lorac_lorafile *f;
    if (lorac_lorafile_open(path, &f) != LORAC_OK) {
        lorac_clear_error();
        return 0;
    }
    lorac_lorafile_info in = {.size = sizeof in};
    cli_check("info", lorac_lorafile_get_info(f, &in));
    printf("%s: GGUF v%u adapter: general.architecture = %s, adapter.type = %s, adapter.lora.alpha = %s%g, %d tensors\n", path,
           in.version, in.arch[0] ? in.arch : "(none)", in.adapter_type[0] ? in.adapter_type : "(none)",
           in.has_alpha ? "" : "(missing) ", in.alpha, in.n_tensors);
    for (int i = 0; i < in.n_tensors; i++) {
        lorac_lorafile_tensor_info t;
        cli_check("info", lorac_lorafile_tensor(f, i, &t));
        /* shape as GGUF's ne[], the way llama.cpp prints it */
        printf("  %-44s ne = [%lld, %lld]  %s\n", t.name, (long long)t.ne[0], (long long)t.ne[1], t.type);
    }
    lorac_lorafile_close(f);
    return 1;
}

/* The module tree: every parameter with its shape, adapter tensors with their pair's settings. */
static void print_tree(const lorac_llm *llm) {
    int lm_head_r = 0;
    for (int i = 0; i < lorac_llm_param_count(llm); i++) {
        lorac_llm_param_info p = {.size = sizeof p};
        cli_check("info", lorac_llm_param(llm, i, &p));
        const long long d0 = (long long)p.shape[0], d1 = (long long)p.shape[1];
        if (p.on_lm_head) { /* a LoRA on the output layer: one line after the tree */
            lm_head_r = p.r;
            continue;
        }
        switch (p.kind) {
        case LORAC_PARAM_BASE:
            if (p.ndim == 2) printf("  %-52s [%lld, %lld]%s\n", p.name, d0, d1, p.trainable ? "  trainable" : "");
            else printf("  %-52s [%lld]%s\n", p.name, d0, p.trainable ? "  trainable" : "");
            break;
        case LORAC_PARAM_LORA_A:
            if (p.on_embedding)
                printf("  %-52s [%lld, %lld]  trainable (embedding LoRA r=%d, alpha %g, scale %.4g)\n", p.name, d0, d1, p.r,
                       (double)p.alpha, p.scale);
            else
                printf("  %-52s [%lld, %lld]  trainable (LoRA r=%d%s, alpha %g, scale %.4g%s)\n", p.name, d0, d1, p.r,
                       p.parts > 1 ? " x3 parts" : "", (double)p.alpha, p.scale,
                       p.residual_init ? ", base = residual of its init" : "");
            break;
        case LORAC_PARAM_LORA_B:
            printf("  %-52s [%lld, %lld]  trainable\n", p.name, d0, d1);
            break;
        case LORAC_PARAM_DORA_M:
            printf("  %-52s [%lld]  trainable (DoRA magnitude)\n", p.name, d0);
            break;
        }
    }
    if (lm_head_r) printf("  lm_head has a LoRA adapter (r=%d)\n", lm_head_r);
}

/* --method on llm (PEFT with task_type None: LoRA matrices only, no head
 * put into modules_to_save); c holds the LoRA flags. */
static void apply_method(const cli_args *a, lorac_llm *llm, lorac_train_config *c) {
    int n;
    c->method = cli_str(a, "method", "lora");
    const cli_method meth = cli_method_parse(a->cmd, "--method", c->method, &n);
    cli_quant_opts_need_qlora(a, meth == CLI_METHOD_QLORA);
    lorac_llm_info in = {.size = sizeof in};
    cli_check(a->cmd, lorac_llm_get_info(llm, &in));
    if (meth == CLI_METHOD_QLORA) {
        /* opened quantized by cli_open; a model from elsewhere (info --config) is quantized here */
        (void)cli_qformat_keep(a, in.path); /* a usage error for keep without a .gguf base */
        const int qembed = cli_qembed_on(a);
        cli_check(a->cmd, lorac_llm_quantize_nf4(llm, !qembed)); /* no-op for Linears already quantized */
        cli_print_quantized_base(llm, "qlora");
    }
    if (meth == CLI_METHOD_HEAD && !in.n_classes) cli_die(a->cmd, EXIT_USAGE, "--method head needs a classification task");
    cli_check(a->cmd, lorac_llm_apply_method(llm, c));
}

int cmd_info(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "info", "usage: lorac info (--model PATH | --config config.json) [--num-classes N] [LoRA options]\n\n"
                          "Prints the module tree with shapes and, as PEFT's print_trainable_parameters,\n"
                          "trainable params: X || all params: Y || trainable%: Z\n"
                          "A GGUF LoRA adapter (lorac export) as --model: its header and tensor list.",
              info_opts, argc, argv);
    if (cli_has(&a, "model") && adapter_gguf(cli_str(&a, "model", ""))) return 0;
    lorac_llm *llm = load(&a);
    lorac_train_config c;
    lorac_train_config_init(&c);
    cli_lora_flags(&a, &c);
    apply_method(&a, llm, &c);
    lorac_llm_info in = {.size = sizeof in};
    cli_check("info", lorac_llm_get_info(llm, &in));
    printf("model: %s (%s, %d layers, hidden %d, heads %d/%d kv, head_dim %d, mlp %d, vocab %d, context %d%s)\n", in.path,
           in.arch, in.n_layers, in.dim, in.n_heads, in.n_kv_heads, in.head_dim, in.ffn_dim, in.vocab_size, in.n_ctx,
           in.tied ? ", tied head" : "");
    print_tree(llm);
    lorac_train_config_lora_info lc = {.size = sizeof lc}; /* the flags as read, whatever the method */
    cli_check("info", lorac_train_config_lora(&c, &lc));
    if (lc.dora || !lc.default_init || lc.n_rank_pattern || lc.n_alpha_pattern)
        printf("LoRA kind: %s, init_lora_weights %s, %d rank_pattern / %d alpha_pattern entries\n", lc.dora ? "DoRA" : "LoRA",
               lc.init, lc.n_rank_pattern, lc.n_alpha_pattern);
    cli_print_params("info", llm, stdout); /* as PEFT's print_trainable_parameters */
    lorac_llm_close(llm);
    return 0;
}

int cmd_modules(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "modules", "usage: lorac modules (--model PATH | --config config.json) [--num-classes N]\n\n"
                             "Lists the Linear modules LoRA can target (their Hugging Face names),\n"
                             "then the short names that --target accepts.",
              info_opts, argc, argv);
    lorac_llm *llm = load(&a);
    lorac_llm_info in = {.size = sizeof in};
    cli_check("modules", lorac_llm_get_info(llm, &in));
    lorac_train_config c; /* with LoRA options: what each targeted module would get */
    lorac_train_config_init(&c);
    cli_lora_flags(&a, &c);
    const int show = cli_has(&a, "target") || cli_has(&a, "target-regex");
    for (int i = 0; i < in.n_modules; i++) {
        lorac_module_info mi;
        cli_check("modules", lorac_llm_module(llm, i, &mi));
        const int role = lorac_llm_module_role(llm, i);
        char what[96] = "";
        lorac_llm_target_info t = {.size = sizeof t};
        if (show) cli_check("modules", lorac_llm_module_target(llm, &c, mi.name, &t));
        if (t.targeted) snprintf(what, sizeof what, "  -> %s r=%d alpha=%g", t.dora ? "DoRA" : "LoRA", t.r, (double)t.alpha);
        printf("%-48s in %-6d out %-6d%s%s\n", mi.name, mi.in, mi.out,
               role == 1 ? "  (output layer; not in all-linear)" : role == 2 ? "  (classification head; not in all-linear)" : "",
               what);
    }
    /* the token embedding: targeted by its name, LoRA as lora_embedding_A / _B */
    for (int i = 0; i < lorac_llm_param_count(llm); i++) {
        lorac_llm_param_info p = {.size = sizeof p};
        cli_check("modules", lorac_llm_param(llm, i, &p));
        if (p.kind != LORAC_PARAM_BASE || !p.on_embedding) continue;
        char mod[112];
        snprintf(mod, sizeof mod, "%.*s", (int)(strlen(p.name) > 7 ? strlen(p.name) - 7 : 0), p.name);
        lorac_llm_target_info t = {.size = sizeof t};
        if (show) cli_check("modules", lorac_llm_module_target(llm, &c, mod, &t));
        printf("%-48s vocab %-6d dim %-6d  (embedding; not in all-linear)%s\n", mod, in.vocab_size, in.dim,
               t.targeted ? "  -> LoRA (lora_embedding_A/B)" : "");
        break;
    }
    printf("short names:");
    char seen[32][128];
    int ns = 0;
    for (int i = 0; i < in.n_modules; i++) {
        lorac_module_info mi;
        cli_check("modules", lorac_llm_module(llm, i, &mi));
        const char *name = mi.name, *p = name;
        /* the part after the layer index: "attn.c_attn", "self_attn.q_proj" */
        const char *dig = NULL;
        for (const char *q = name; *q; q++)
            if (*q == '.' && q[1] >= '0' && q[1] <= '9') dig = q + 1;
        if (dig) {
            p = strchr(dig, '.');
            p = p ? p + 1 : name;
        }
        int dup = 0;
        for (int j = 0; j < ns; j++) dup |= !strcmp(seen[j], p);
        if (!dup && ns < 32) {
            snprintf(seen[ns++], 128, "%s", p);
            printf(" %s", p);
        }
    }
    printf(" all-linear\n");
    lorac_llm_close(llm);
    return 0;
}
