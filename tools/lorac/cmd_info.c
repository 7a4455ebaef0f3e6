/* lorac info / lorac modules - what a model holds and what LoRA would train.
 * Not on the public API yet (cli_internal.h): a model from a config.json
 * alone (random weights), every weight's shape with its LoRA pair, and a
 * GGUF adapter's header have no public calls. */
#include <stdio.h>
#include <string.h>

#include "cli_internal.h"
#include "io/gguf.h"
#include "io/tensorfile.h"
#include "lora/lora_init.h"

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
    if (cfg) {
        lorac_config c;
        lorac_model *m;
        cli_check(a->cmd, lorac_config_load_json(cfg, &c));
        cli_check(a->cmd, lorac_model_create_random(&c, 1, &m));
        cli_check(a->cmd, lorac_api_wrap(m, &llm));
    } else {
        cli_open(a, 0, &llm);
    }
    int nc = cli_int(a, "num-classes", 0, 0, 100000);
    if (nc) cli_add_head(a, llm->m, nc, 1);
    return llm;
}

/* A GGUF LoRA adapter (lorac export, convert_lora_to_gguf.py): its header
 * and tensors as lorac's GGUF reader sees them. Returns 0 if not an adapter. */
static int adapter_gguf(const char *path) {
    size_t n = strlen(path);
    if (n < 5 || strcmp(path + n - 5, ".gguf")) return 0;
    lorac_gguf *g;
    if (lorac_gguf_open(path, &g) != LORAC_OK) return 0;
    const char *type = lorac_gguf_get_str(g, "general.type");
    if (!type || strcmp(type, "adapter")) {
        lorac_gguf_close(g);
        return 0;
    }
    double alpha = 0;
    const char *at = lorac_gguf_get_str(g, "adapter.type"), *arch = lorac_gguf_get_str(g, "general.architecture");
    int has_alpha = lorac_gguf_get_float(g, "adapter.lora.alpha", &alpha);
    printf("%s: GGUF v%u adapter: general.architecture = %s, adapter.type = %s, adapter.lora.alpha = %s%g, %d tensors\n", path,
           lorac_gguf_version(g), arch ? arch : "(none)", at ? at : "(none)", has_alpha ? "" : "(missing) ", alpha,
           lorac_gguf_tensor_count(g));
    for (int i = 0; i < lorac_gguf_tensor_count(g); i++) {
        const lorac_tensor_desc *t = lorac_gguf_tensor(g, i);
        /* shape as GGUF's ne[] (reversed row-major), the way llama.cpp prints it */
        printf("  %-44s ne = [%lld, %lld]  %s\n", t->name, (long long)t->shape[t->ndim - 1],
               (long long)(t->ndim > 1 ? t->shape[t->ndim - 2] : 1), lorac_dtype_name(t->dtype));
    }
    lorac_gguf_close(g);
    return 1;
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
    lorac_model *m = llm->m;
    lorac_lora_config lc;
    cli_lora_config(&a, &lc);
    cli_apply_method(&a, llm, &lc, 0);
    const lorac_config *c = &m->cfg;
    printf("model: %s (%s, %d layers, hidden %d, heads %d/%d kv, head_dim %d, mlp %d, vocab %d, context %d%s)\n", m->path,
           c->model_type, c->n_layer, c->dim, c->n_head, c->n_kv_head, c->head_dim, c->ffn_dim, c->vocab, c->n_ctx,
           c->tied ? ", tied head" : "");
    for (int i = 0; i < m->n_w; i++) {
        const lorac_weight *w = &m->w[i];
        if (w->ndim == 2)
            printf("  %-52s [%lld, %lld]%s\n", w->name, (long long)w->shape[0], (long long)w->shape[1], w->grad ? "  trainable" : "");
        else
            printf("  %-52s [%lld]%s\n", w->name, (long long)w->shape[0], w->grad ? "  trainable" : "");
        if (w == m->wte && m->wte_lora) {
            const lorac_lora *l = m->wte_lora;
            printf("  %-52s [%lld, %lld]  trainable (embedding LoRA r=%d, alpha %g, scale %.4g)\n", l->A.name,
                   (long long)l->A.shape[0], (long long)l->A.shape[1], l->r, (double)l->alpha, l->scale);
            printf("  %-52s [%lld, %lld]  trainable\n", l->B.name, (long long)l->B.shape[0], (long long)l->B.shape[1]);
        }
        for (int j = 0; j < m->n_lin; j++) {
            const lorac_linear *L = &m->lin[j];
            if (L->W != w || !L->lora || L == m->lm_head) continue;
            const lorac_lora *l = L->lora;
            printf("  %-52s [%lld, %lld]  trainable (LoRA r=%d%s, alpha %g, scale %.4g%s)\n", l->A.name,
                   (long long)l->A.shape[0], (long long)l->A.shape[1], l->r, l->parts > 1 ? " x3 parts" : "",
                   (double)l->alpha, l->scale, l->A0 ? ", base = residual of its init" : "");
            printf("  %-52s [%lld, %lld]  trainable\n", l->B.name, (long long)l->B.shape[0], (long long)l->B.shape[1]);
            if (l->dora) printf("  %-52s [%lld]  trainable (DoRA magnitude)\n", l->M.name, (long long)l->M.shape[0]);
        }
    }
    if (m->lm_head && m->lm_head->lora) printf("  lm_head has a LoRA adapter (r=%d)\n", m->lm_head->lora->r);
    if (lc.use_dora || lc.init != LORAC_INIT_DEFAULT || lc.n_rank_pattern || lc.n_alpha_pattern) {
        char ib[32];
        printf("LoRA kind: %s, init_lora_weights %s, %d rank_pattern / %d alpha_pattern entries\n",
               lc.use_dora ? "DoRA" : "LoRA", lorac_lora_init_name(&lc, ib, sizeof ib), lc.n_rank_pattern, lc.n_alpha_pattern);
    }
    cli_print_trainable(m, stdout);
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
    const lorac_model *m = llm->m;
    lorac_lora_config lc; /* with LoRA options: what each targeted module would get */
    cli_lora_config(&a, &lc);
    const int show = cli_has(&a, "target") || cli_has(&a, "target-regex");
    for (int i = 0; i < m->n_lin; i++) {
        const lorac_linear *L = &m->lin[i];
        char what[96] = "";
        if (show && lorac_lora_targets(&lc, m, L)) {
            int r;
            float alpha;
            lorac_lora_module_r_alpha(&lc, L->name, &r, &alpha);
            snprintf(what, sizeof what, "  -> %s r=%d alpha=%g", lc.use_dora ? "DoRA" : "LoRA", r, (double)alpha);
        }
        printf("%-48s in %-6d out %-6d%s%s\n", L->name, L->in, L->out,
               L == m->lm_head ? "  (output layer; not in all-linear)" : L == m->head ? "  (classification head; not in all-linear)" : "",
               what);
    }
    { /* the token embedding: targeted by its name, LoRA as lora_embedding_A / _B */
        char mod[112];
        snprintf(mod, sizeof mod, "%.*s", (int)(strlen(m->wte->name) > 7 ? strlen(m->wte->name) - 7 : 0), m->wte->name);
        printf("%-48s vocab %-6d dim %-6d  (embedding; not in all-linear)%s\n", mod, m->cfg.vocab, m->cfg.dim,
               show && lorac_lora_embed_targeted(&lc, m) ? "  -> LoRA (lora_embedding_A/B)" : "");
    }
    printf("short names:");
    char seen[32][128];
    int ns = 0;
    for (int i = 0; i < m->n_lin; i++) {
        const char *name = m->lin[i].name, *p = name;
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
