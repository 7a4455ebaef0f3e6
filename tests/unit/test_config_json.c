/* test_config_json - the config.json `lorac merge` writes for a base without
 * one of its own (a GGUF file, a random model): lorac_config_to_hf_json.
 *
 *  1. round trip: for every tiny Hugging Face fixture (Llama, Llama 3 with
 *     rope_scaling, Mistral, Qwen2, Qwen3, Gemma 2 / 3, Phi-3, GPT-2) and the
 *     real GGUF files in .cache (SmolLM2, Qwen2.5-Coder, Gemma 3), config ->
 *     config.json -> lorac_config_load_json gives back every field the
 *     forward pass uses (sizes, norms, RoPE and its scaling, biases, qk-norm,
 *     Gemma's blocks, attention scale, soft caps, sliding window and which
 *     layers use it, tied head, special ids);
 *  2. the family: model_type and architectures name the transformers class
 *     whose modeling code matches (a Qwen2 GGUF is "qwen2", whose o_proj has
 *     no bias, not "llama" with attention_bias);
 *  3. refusals: an encoder, and RoPE factors from a GGUF rope_freqs.weight
 *     (no rope_scaling parameters to write) are UNSUPPORTED with a hint;
 *  4. a GGUF's rope_freqs.weight (Llama 3.1 as llama.cpp's converter stores
 *     it: one divisor per frequency, made from rope_scaling by the formula
 *     below, written here independently of lorac's own llama3 code) gives
 *     the RoPE table the Hugging Face config's rope_scaling gives; a factor
 *     tensor of the wrong length or with a non-positive value is refused.
 * Whether transformers itself loads the written checkpoints is checked by
 * tests/ref/check_merged.py. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "models/decoder_blocks.h"
#include "models/config.h"
#include "testutil.h"

static float eff_scale(const lorac_config *c) {
    return c->attn_scale > 0 ? c->attn_scale : (float)(1.0 / sqrt((double)c->head_dim));
}

static int same_f(float a, float b) { return a == b || fabsf(a - b) <= 1e-6f * fabsf(b); }

/* Every field the forward pass reads, a (from the source) against b (read back). */
static void compare(const char *what, const lorac_config *a, const lorac_config *b) {
#define SAME_I(f) CHECK(a->f == b->f, "%s: " #f " %d, read back %d", what, (int)a->f, (int)b->f)
#define SAME_F(f) CHECK(same_f(a->f, b->f), "%s: " #f " %g, read back %g", what, (double)a->f, (double)b->f)
    SAME_I(arch);
    SAME_I(vocab);
    SAME_I(n_ctx);
    SAME_I(dim);
    SAME_I(n_layer);
    SAME_I(n_head);
    SAME_I(n_kv_head);
    SAME_I(head_dim);
    SAME_I(ffn_dim);
    SAME_F(norm_eps);
    SAME_I(tied);
    SAME_I(bos_id);
    SAME_I(eos_id);
    SAME_I(pad_id);
    SAME_F(attn_dropout); /* the model's own dropout in training */
    if (a->arch == LORAC_ARCH_GPT2 || a->fused) SAME_F(hidden_dropout);
    if (a->arch == LORAC_ARCH_GPT2) SAME_F(embd_dropout);
    if (a->arch == LORAC_ARCH_LLAMA) {
        SAME_F(rope_theta);
        SAME_I(attn_bias);
        SAME_I(mlp_bias);
        SAME_I(qk_norm);
        SAME_I(gemma);
        SAME_I(fused);
        SAME_I(rope_scale_type);
        if (a->rope_scale_type) SAME_F(rope_factor);
        if (a->rope_scale_type == 2) {
            SAME_F(rope_low_freq);
            SAME_F(rope_high_freq);
            SAME_I(rope_orig_ctx);
        }
        SAME_I(sliding_window);
        CHECK(!memcmp(a->local_layer, b->local_layer, (size_t)a->n_layer), "%s: the sliding-window layers differ", what);
        if (a->gemma) {
            CHECK(same_f(eff_scale(a), eff_scale(b)), "%s: attention scale %g, read back %g", what,
                  (double)eff_scale(a), (double)eff_scale(b));
            SAME_F(rope_local_theta);
            SAME_F(attn_softcap);
            SAME_F(final_softcap);
        }
    }
#undef SAME_I
#undef SAME_F
}

static void write_text(const char *path, const char *txt) {
    FILE *f = fopen(path, "w");
    CHECK(f, "cannot write %s", path);
    if (!f) return;
    fputs(txt, f);
    fclose(f);
}

/* c -> config.json in a fresh directory -> lorac_config_load_json; checks
 * the family's names and returns the model_type written. */
static void round_trip(const char *what, const lorac_config *c, const char *want_type, const char *want_class) {
    cJSON *j = NULL;
    CHECK_OK(lorac_config_to_hf_json(c, &j));
    if (!j) return;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "model_type");
    const cJSON *ar = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "architectures"), 0);
    CHECK(cJSON_IsString(mt) && !strcmp(mt->valuestring, want_type), "%s: model_type %s, want %s", what,
          cJSON_IsString(mt) ? mt->valuestring : "(none)", want_type);
    CHECK(cJSON_IsString(ar) && !strcmp(ar->valuestring, want_class), "%s: architectures[0] %s, want %s", what,
          cJSON_IsString(ar) ? ar->valuestring : "(none)", want_class);
    if (!strcmp(want_type, "qwen2"))
        CHECK(!cJSON_GetObjectItemCaseSensitive(j, "attention_bias"), "%s: a Qwen2 config with attention_bias", what);
    char *txt = cJSON_Print(j);
    cJSON_Delete(j);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    CHECK(txt, "%s: cJSON_Print failed", what);
    write_text(path, txt ? txt : "");
    free(txt);
    lorac_config back;
    CHECK_OK(lorac_config_load_json(path, &back));
    compare(what, c, &back);
    unlink(path);
}

static void fixture(const char *name, const char *want_type, const char *want_class) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/models/%s/config.json", name);
    lorac_config c;
    CHECK_OK(lorac_config_load_json(test_src_path(rel), &c));
    round_trip(name, &c, want_type, want_class);
}

static void real_gguf(const char *rel, const char *want_type, const char *want_class) {
    const char *path = test_cache_path(rel);
    if (access(path, R_OK) != 0) {
        printf("skip %s: not fetched (scripts/fetch-models)\n", rel);
        return;
    }
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    if (!g) return;
    lorac_config c;
    CHECK_OK(lorac_config_from_gguf(g, &c));
    round_trip(rel, &c, want_type, want_class);
    lorac_gguf_close(g);
}

static void refusals(void) {
    lorac_config c;
    CHECK_OK(lorac_config_load_json(test_src_path("tests/fixtures/models/tiny_llama/config.json"), &c));
    c.rope_scale_type = 3; /* as a GGUF with rope_freqs.weight reads */
    for (int i = 0; i < c.head_dim / 2; i++) c.rope_freq_factor[i] = 1.0f + (float)i;
    cJSON *j = (cJSON *)&c; /* must be reset to NULL on failure */
    CHECK(lorac_config_to_hf_json(&c, &j) == LORAC_ERR_UNSUPPORTED && !j && strstr(lorac_last_error(), "rope_freqs") &&
              strstr(lorac_last_error(), "hint"),
          "RoPE factors: %s", lorac_last_error());
    CHECK_OK(lorac_config_load_json(test_src_path("tests/fixtures/models/tiny_bert/config.json"), &c));
    CHECK(lorac_config_to_hf_json(&c, &j) == LORAC_ERR_UNSUPPORTED && !j && strstr(lorac_last_error(), "encoder"),
          "encoder: %s", lorac_last_error());
}

/* The model's own dropout rates: transformers' defaults when the keys are
 * absent (GPT2Config 0.1 each, LlamaConfig / Phi3Config 0), the written
 * config.json keeps rates that differ from them, and a rate outside [0, 1)
 * is refused naming the file. */
static void dropouts(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", test_tmpdir());
    static const struct {
        const char *json;
        float resid, attn, embd;
    } cases[] = {
        {"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"vocab_size\":11}", 0.1f, 0.1f, 0.1f},
        {"{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"vocab_size\":11,"
         "\"resid_pdrop\":0.05,\"attn_pdrop\":0.15,\"embd_pdrop\":0.25}", 0.05f, 0.15f, 0.25f},
        {"{\"model_type\":\"qwen2\",\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"intermediate_size\":16,\"vocab_size\":11}", 0, 0, 0},
        {"{\"model_type\":\"phi3\",\"hidden_size\":8,\"num_hidden_layers\":1,\"num_attention_heads\":2,"
         "\"intermediate_size\":16,\"vocab_size\":11,\"resid_pdrop\":0.05,\"attention_dropout\":0.125}", 0.05f, 0.125f, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(path, cases[i].json);
        lorac_config c;
        CHECK_OK(lorac_config_load_json(path, &c));
        CHECK(c.hidden_dropout == cases[i].resid && c.attn_dropout == cases[i].attn && c.embd_dropout == cases[i].embd,
              "dropout case %zu: resid %g attn %g embd %g", i, (double)c.hidden_dropout, (double)c.attn_dropout,
              (double)c.embd_dropout);
        round_trip("dropout rates", &c, c.model_type, c.arch == LORAC_ARCH_GPT2 ? "GPT2LMHeadModel"
                                                      : c.fused                  ? "Phi3ForCausalLM"
                                                                                 : "Qwen2ForCausalLM");
    }
    write_text(path, "{\"model_type\":\"gpt2\",\"n_embd\":8,\"n_layer\":1,\"n_head\":2,\"vocab_size\":11,"
                          "\"resid_pdrop\":1.5}");
    lorac_config c;
    CHECK(lorac_config_load_json(path, &c) == LORAC_ERR_FORMAT && strstr(lorac_last_error(), path) &&
              strstr(lorac_last_error(), "resid_pdrop") && strstr(lorac_last_error(), "1.5"),
          "resid_pdrop 1.5: %s", lorac_last_error());
    unlink(path);
}

/* llama.cpp's convert_hf_to_gguf (LlamaModel, rope_type llama3): for each
 * frequency f_i = theta^(-2i/D), wavelength w = 2 pi / f_i: factor 1 when
 * w < orig / high_freq_factor, `factor` when w > orig / low_freq_factor,
 * else 1 / ((1 - s) / factor + s) with s = (orig / w - low) / (high - low). */
static void llama31_factors(const lorac_config *c, float *out) {
    const double lo_w = c->rope_orig_ctx / c->rope_low_freq, hi_w = c->rope_orig_ctx / c->rope_high_freq;
    for (int i = 0; i < c->head_dim / 2; i++) {
        const double w = 2 * 3.14159265358979323846 * pow(c->rope_theta, 2.0 * i / c->head_dim);
        if (w < hi_w) {
            out[i] = 1.0f;
        } else if (w > lo_w) {
            out[i] = c->rope_factor;
        } else {
            const double sm = (c->rope_orig_ctx / w - c->rope_low_freq) / (c->rope_high_freq - c->rope_low_freq);
            out[i] = (float)(1.0 / ((1 - sm) / c->rope_factor + sm));
        }
    }
}

/* A metadata-only Llama GGUF with hf's sizes and the factor tensor
 * rope_freqs.weight[n] (and a token embedding, for the vocab size). */
static const char *write_gguf(const lorac_config *hf, const float *factors, int n, const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", test_tmpdir(), name);
    lorac_gguf_writer *w = NULL;
    CHECK_OK(lorac_gguf_writer_new(&w));
    if (!w) return path;
    CHECK_OK(lorac_gguf_set_str(w, "general.architecture", "llama"));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.context_length", (uint32_t)hf->n_ctx));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.embedding_length", (uint32_t)hf->dim));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.block_count", (uint32_t)hf->n_layer));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.feed_forward_length", (uint32_t)hf->ffn_dim));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.attention.head_count", (uint32_t)hf->n_head));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.attention.head_count_kv", (uint32_t)hf->n_kv_head));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.attention.key_length", (uint32_t)hf->head_dim));
    CHECK_OK(lorac_gguf_set_f32(w, "llama.rope.freq_base", hf->rope_theta));
    CHECK_OK(lorac_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", hf->norm_eps));
    float emb[64] = {0};
    const int64_t fshape[1] = {n}, es[2] = {8, 8}; /* an 8-token vocab: only the sizes matter here */
    CHECK_OK(lorac_gguf_add_tensor(w, "token_embd.weight", emb, 2, es, LORAC_F32));
    CHECK_OK(lorac_gguf_add_tensor(w, "rope_freqs.weight", factors, 1, fshape, LORAC_F32));
    CHECK_OK(lorac_gguf_writer_write(w, path));
    lorac_gguf_writer_free(w);
    return path;
}

static lorac_status read_gguf(const char *path, lorac_config *c) {
    lorac_gguf *g = NULL;
    lorac_status st = lorac_gguf_open(path, &g);
    if (st == LORAC_OK) st = lorac_config_from_gguf(g, c);
    lorac_gguf_close(g);
    return st;
}

static void rope_freqs_gguf(void) {
    lorac_config hf, gg;
    CHECK_OK(lorac_config_load_json(test_src_path("tests/fixtures/models/tiny_llama3/config.json"), &hf));
    CHECK(hf.rope_scale_type == 2, "tiny_llama3 is not a llama3 rope_scaling fixture (%d)", hf.rope_scale_type);
    const int half = hf.head_dim / 2;
    float f[LORAC_ROPE_MAX_HALF], want[LORAC_ROPE_MAX_HALF], got[LORAC_ROPE_MAX_HALF];
    llama31_factors(&hf, f);
    int kept = 0, scaled = 0, blended = 0;
    for (int i = 0; i < half; i++) kept += f[i] == 1.0f, scaled += f[i] == hf.rope_factor;
    blended = half - kept - scaled;
    CHECK(kept && scaled && blended, "the fixture should cover all three regimes: %d kept, %d scaled, %d blended", kept,
          scaled, blended);
    CHECK_OK(read_gguf(write_gguf(&hf, f, half, "llama31"), &gg));
    CHECK(gg.rope_scale_type == 3, "rope_freqs.weight not read (rope_scale_type %d)", gg.rope_scale_type);
    lorac_rope_table(&hf, 0, want);
    lorac_rope_table(&gg, 0, got);
    test_close("RoPE table: GGUF rope_freqs vs HF rope_scaling llama3", got, want, (size_t)half, 1e-6, 0);
    /* damaged factor tensors */
    CHECK(read_gguf(write_gguf(&hf, f, half + 1, "long"), &gg) == LORAC_ERR_FORMAT &&
              strstr(lorac_last_error(), "rope_freqs.weight"),
          "a factor tensor of the wrong length: %s", lorac_last_error());
    f[1] = -2.0f;
    CHECK(read_gguf(write_gguf(&hf, f, half, "negative"), &gg) == LORAC_ERR_FORMAT &&
              strstr(lorac_last_error(), "rope_freqs.weight[1]"),
          "a negative factor: %s", lorac_last_error());
}

int main(void) {
    fixture("tiny_llama", "llama", "LlamaForCausalLM");
    fixture("tiny_llama3", "llama", "LlamaForCausalLM");
    fixture("tiny_llama_tied", "llama", "LlamaForCausalLM");
    fixture("tiny_mistral", "mistral", "MistralForCausalLM");
    fixture("tiny_qwen2", "qwen2", "Qwen2ForCausalLM");
    fixture("tiny_qwen3", "qwen3", "Qwen3ForCausalLM");
    fixture("tiny_gemma2", "gemma2", "Gemma2ForCausalLM");
    fixture("tiny_gemma3", "gemma3_text", "Gemma3ForCausalLM");
    fixture("tiny_phi3", "phi3", "Phi3ForCausalLM");
    fixture("tiny_gpt2", "gpt2", "GPT2LMHeadModel");
    dropouts();
    real_gguf("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf", "llama", "LlamaForCausalLM");
    real_gguf("models/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "qwen2",
              "Qwen2ForCausalLM");
    real_gguf("models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf", "gemma3_text", "Gemma3ForCausalLM");
    refusals();
    rope_freqs_gguf();
    return test_summary("test_config_json");
}
