/* lora_embed.c - LoRA on the token embedding, as PEFT's lora.Embedding:
 * the embedding E [vocab, dim] gets lora_embedding_A [r, vocab] and
 * lora_embedding_B [dim, r] (PEFT's parameter names and layouts) and
 *
 *   x[n, :] = E[id_n, :] + s * B A[:, id_n]          (ΔE = s (B A)^T)
 *
 * initialised as PEFT does: A = 0, B ~ N(0, 1) (so the model is unchanged
 * at first; the gradient reaches A first). Backward, from dL/dx [N, dim]:
 *   dA[:, id_n] += s * B^T dx[n, :]      dB += s * dx[n, :]^T A[:, id_n]^T
 * The pair is a lorac_lora with parts = 1 held by the model (m->wte_lora):
 * its A is lora_embedding_A, its B lora_embedding_B.
 *
 * A tied LM head keeps using E alone, as in PEFT without
 * ensure_weight_tying; merging such a pair would change the head too, so it
 * is refused (lora/merge.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/lora.h"

/* The embedding's module name ("model.embed_tokens") into buf. */
static const char *embed_module(const lorac_model *m, char *buf, size_t n) {
    size_t len = strlen(m->wte->name);
    if (len >= n) len = n - 1;
    memcpy(buf, m->wte->name, len);
    buf[len] = 0;
    if (len > 7 && !strcmp(buf + len - 7, ".weight")) buf[len - 7] = 0;
    return buf;
}

lorac_status lorac_lora_embed_new(lorac_model *m, int r, float alpha, float scale, int grads, lorac_lora **out) {
    const int V = m->cfg.vocab, C = m->cfg.dim;
    lorac_lora *l;
    *out = NULL;
    LORAC_TRY(lorac_alloc((void **)&l, 1, sizeof *l, "embedding LoRA"));
    char mod[112];
    embed_module(m, mod, sizeof mod);
    l->r = r;
    l->parts = 1;
    l->alpha = alpha;
    l->scale = scale;
    snprintf(l->A.name, sizeof l->A.name, "%s.lora_embedding_A", mod);
    snprintf(l->B.name, sizeof l->B.name, "%s.lora_embedding_B", mod);
    l->A.ndim = l->B.ndim = 2;
    l->A.shape[0] = r;
    l->A.shape[1] = V;
    l->B.shape[0] = C;
    l->B.shape[1] = r;
    l->A.n = (size_t)r * V;
    l->B.n = (size_t)C * r;
    l->A.owned = l->B.owned = 1;
    lorac_status st = lorac_alloc((void **)&l->A.data, l->A.n, sizeof(float), "lora_embedding_A");
    if (st == LORAC_OK) st = lorac_alloc((void **)&l->B.data, l->B.n, sizeof(float), "lora_embedding_B");
    if (st == LORAC_OK && grads) st = lorac_alloc((void **)&l->A.grad, l->A.n, sizeof(float), "lora_embedding_A grad");
    if (st == LORAC_OK && grads) st = lorac_alloc((void **)&l->B.grad, l->B.n, sizeof(float), "lora_embedding_B grad");
    if (st != LORAC_OK) {
        lorac_lora_free(l);
        return st;
    }
    *out = l;
    return LORAC_OK;
}

int lorac_lora_embed_targeted(const lorac_lora_config *c, const lorac_model *m) {
    char mod[112];
    embed_module(m, mod, sizeof mod);
    lorac_linear probe; /* the matching rules of lorac_lora_targets, on the embedding's name */
    memset(&probe, 0, sizeof probe);
    snprintf(probe.name, sizeof probe.name, "%s", mod);
    for (int i = 0; i < c->n_targets; i++)
        if (!strcmp(c->targets[i], "all-linear")) { /* all-linear names Linears only: test the others alone */
            lorac_lora_config d = *c;
            d.n_targets = 0;
            for (int k = 0; k < c->n_targets; k++)
                if (strcmp(c->targets[k], "all-linear")) memcpy(d.targets[d.n_targets++], c->targets[k], sizeof d.targets[0]);
            return (d.n_targets > 0 || d.target_regex[0]) && lorac_lora_targets(&d, m, &probe);
        }
    return lorac_lora_targets(c, m, &probe);
}

lorac_status lorac_lora_embed_apply(lorac_model *m, const lorac_lora_config *c, lorac_rng *rng) {
    char mod[112];
    int r;
    float alpha;
    lorac_lora_module_r_alpha(c, embed_module(m, mod, sizeof mod), &r, &alpha);
    if (c->use_dora || c->init == LORAC_INIT_PISSA || c->init == LORAC_INIT_OLORA)
        return lorac_fail(LORAC_ERR_UNSUPPORTED, "LoRA on the embedding '%s' with %s: lorac has plain LoRA on embeddings "
                          "only; hint: leave the embedding out of --target", mod,
                          c->use_dora ? "use_dora" : "a PiSSA/OLoRA init");
    if (r > 4096) return lorac_fail(LORAC_ERR_ARG, "rank_pattern gives '%s' r=%d; hint: use 1..4096", mod, r);
    const float scale = c->use_rslora ? alpha / sqrtf((float)r) : alpha / (float)r;
    LORAC_TRY(lorac_lora_embed_new(m, r, alpha, scale, 1, &m->wte_lora));
    lorac_lora *l = m->wte_lora;
    /* PEFT: A = 0, B ~ N(0, 1); init_lora_weights=false leaves nn.Parameter's randn for both... */
    for (size_t i = 0; i < l->B.n; i++) l->B.data[i] = lorac_rng_normal(rng);
    if (c->init == LORAC_INIT_FALSE) /* ... as PEFT's lora_embedding_A/B are created with torch.randn */
        for (size_t i = 0; i < l->A.n; i++) l->A.data[i] = lorac_rng_normal(rng);
    return LORAC_OK;
}

void lorac_lora_embed_fwd(const lorac_model *m, float *x, const int *ids, int N) {
    const lorac_lora *l = m->wte_lora;
    if (!l || l->merged) return;
    const int C = m->cfg.dim, V = m->cfg.vocab, r = l->r;
    for (int n = 0; n < N; n++) {
        float a[4096];
        for (int k = 0; k < r; k++) a[k] = l->scale * l->A.data[(size_t)k * V + ids[n]];
        float *xn = x + (size_t)n * C;
        for (int c = 0; c < C; c++) {
            float s = 0;
            for (int k = 0; k < r; k++) s += l->B.data[(size_t)c * r + k] * a[k];
            xn[c] += s;
        }
    }
}

void lorac_lora_embed_bwd(lorac_model *m, const float *dx, const int *ids, int N) {
    lorac_lora *l = m->wte_lora;
    if (!l || l->merged) return;
    const int C = m->cfg.dim, V = m->cfg.vocab, r = l->r;
    for (int n = 0; n < N; n++) {
        const float *d = dx + (size_t)n * C;
        for (int k = 0; k < r; k++) {
            const float ak = l->A.data[(size_t)k * V + ids[n]];
            double g = 0;
            for (int c = 0; c < C; c++) {
                g += (double)l->B.data[(size_t)c * r + k] * d[c];
                if (l->B.grad) l->B.grad[(size_t)c * r + k] += l->scale * d[c] * ak;
            }
            if (l->A.grad) l->A.grad[(size_t)k * V + ids[n]] += (float)(l->scale * g);
        }
    }
}
