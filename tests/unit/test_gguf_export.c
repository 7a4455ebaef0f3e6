/* test_gguf_export.c - the GGUF writer and `lorac export --format gguf`:
 *  a. the writer's files read back with lorac's GGUF reader (every metadata
 *     type, F32 and F16 tensors, alignment 32 and 64), it refuses bad input,
 *     and every truncation of a written file is refused by the reader;
 *  b. the PEFT Llama adapter exports to llama.cpp's convention: general.type,
 *     adapter.type, adapter.lora.alpha, architecture, the exact tensor names
 *     and shapes, lora_a == A, lora_b == B (q/k: B with llama.cpp's RoPE row
 *     permutation, checked by un-permuting), and for every module llama.cpp's
 *     delta (alpha/rank) B_gguf A_gguf, un-permuted for q/k, equals lorac's
 *     HF-order merge delta; rsLoRA folds its scale into alpha; F16 too;
 *  c. GPT-2: the PEFT Conv1D adapter, and a split q|k|v adapter exported as
 *     one block-diagonal rank-3r pair on attn_qkv, give lorac's merge delta;
 *  d. untied lm_head -> output.weight; refusals: tied lm_head, classification
 *     head, modules_to_save, trained biases, encoder, not-a-GGUF write path;
 *  e. tiny_llama written as llama.cpp's converter writes it (q/k rows through
 *     LlamaModel.permute) loads in lorac as the HF base, and against that GGUF
 *     base the exported adapter gives, in llama.cpp's own row order,
 *     W_gguf + (alpha/r) B_gguf A_gguf == permute(lorac's HF-order merge). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "lora/adapter_io.h"
#include "lora/export_gguf.h"
#include "lora/lora.h"
#include "lora/merge.h"
#include "models/model.h"
#include "testutil.h"

#define LLAMA "tests/fixtures/models/tiny_llama"
#define LLAMA_TIED "tests/fixtures/models/tiny_llama_tied"
#define GPT2 "tests/fixtures/models/tiny_gpt2"
#define BERT "tests/fixtures/models/tiny_bert"
#define LLAMA_PEFT "tests/fixtures/parity/tiny_llama_peft_adapter"
#define GPT2_PEFT "tests/fixtures/parity/tiny_gpt2_peft_adapter"

static char g_tmp[512];

static const char *tmp_file(const char *name) {
    static char p[4][700];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_tmp, name);
    return p[k];
}

static float *tensor_f32(const lorac_tensor_desc *t) {
    float *x = malloc(sizeof(float) * (size_t)t->numel);
    if (x && lorac_to_f32(x, t->data, t->dtype, t->numel) != LORAC_OK) {
        free(x);
        return NULL;
    }
    return x;
}

/* ---------------------------------------------------------------- a. writer */

static void test_writer_roundtrip(uint32_t align) {
    lorac_gguf_writer *w;
    CHECK_OK(lorac_gguf_writer_new(&w));
    if (!w) return;
    if (align != 32) CHECK_OK(lorac_gguf_writer_set_alignment(w, align));
    const uint32_t au[3] = {7, 8, 4000000000u};
    const float af[2] = {0.5f, -2.25f};
    const char *as[3] = {"alpha", "", "gamma\xc3\xa9"};
    CHECK_OK(lorac_gguf_set_str(w, "general.architecture", "llama"));
    CHECK_OK(lorac_gguf_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(lorac_gguf_set_i32(w, "t.i32", -123456));
    CHECK_OK(lorac_gguf_set_u64(w, "t.u64", UINT64_C(1) << 40));
    CHECK_OK(lorac_gguf_set_f32(w, "t.f32", 0.1f));
    CHECK_OK(lorac_gguf_set_bool(w, "t.bool", 1));
    CHECK_OK(lorac_gguf_set_arr_u32(w, "t.arr_u32", au, 3));
    CHECK_OK(lorac_gguf_set_arr_f32(w, "t.arr_f32", af, 2));
    CHECK_OK(lorac_gguf_set_arr_str(w, "t.arr_str", as, 3));
    CHECK_OK(lorac_gguf_set_arr_u32(w, "t.empty", NULL, 0));
    float x[3 * 5], y[7], z[2 * 3 * 4];
    for (int i = 0; i < 15; i++) x[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 7; i++) y[i] = 1.0f / (float)(i + 1);
    for (int i = 0; i < 24; i++) z[i] = (float)(i * i) - 3.5f;
    const int64_t sx[2] = {3, 5}, sy[1] = {7}, sz[3] = {2, 3, 4};
    CHECK_OK(lorac_gguf_add_tensor(w, "x", x, 2, sx, LORAC_F32));
    CHECK_OK(lorac_gguf_add_tensor(w, "y.f16", y, 1, sy, LORAC_F16));
    CHECK_OK(lorac_gguf_add_tensor(w, "z", z, 3, sz, LORAC_F32));
    const char *path = tmp_file(align == 32 ? "rt32.gguf" : "rt64.gguf");
    CHECK_OK(lorac_gguf_writer_write(w, path));
    const uint64_t want_size = lorac_gguf_writer_size(w);
    lorac_gguf_writer_free(w);

    lorac_mmap mm;
    CHECK_OK(lorac_mmap_open(path, &mm));
    CHECK(mm.size == want_size, "file is %zu bytes, writer said %llu", mm.size, (unsigned long long)want_size);
    CHECK(mm.size % align == 0, "file size %zu is not padded to %u", mm.size, align);
    lorac_mmap_close(&mm);

    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    if (!g) return;
    int64_t iv = 0;
    double fv = 0;
    int bv = 0;
    lorac_gguf_type et;
    uint64_t n = 0;
    CHECK(lorac_gguf_version(g) == 3, "version %u", lorac_gguf_version(g));
    CHECK(lorac_gguf_kv_count(g) == 11, "kv count %d", lorac_gguf_kv_count(g));
    CHECK(lorac_gguf_get_int(g, "general.alignment", &iv) && iv == align, "alignment %lld", (long long)iv);
    CHECK(lorac_gguf_kv_type(g, lorac_gguf_find_key(g, "general.alignment")) == LORAC_GGUF_U32, "alignment not u32");
    const char *arch = lorac_gguf_get_str(g, "general.architecture");
    CHECK(arch && !strcmp(arch, "llama"), "arch %s", arch ? arch : "(null)");
    CHECK(lorac_gguf_get_int(g, "t.u32", &iv) && iv == 4000000000LL, "u32 %lld", (long long)iv);
    CHECK(lorac_gguf_get_int(g, "t.i32", &iv) && iv == -123456, "i32 %lld", (long long)iv);
    CHECK(lorac_gguf_get_int(g, "t.u64", &iv) && iv == (INT64_C(1) << 40), "u64 %lld", (long long)iv);
    CHECK(lorac_gguf_kv_type(g, lorac_gguf_find_key(g, "t.f32")) == LORAC_GGUF_F32, "f32 type");
    CHECK(lorac_gguf_get_float(g, "t.f32", &fv) && (float)fv == 0.1f, "f32 %g", fv);
    CHECK(lorac_gguf_get_bool(g, "t.bool", &bv) && bv == 1, "bool %d", bv);
    CHECK(lorac_gguf_get_arr(g, "t.arr_u32", &et, &n) && et == LORAC_GGUF_U32 && n == 3, "arr_u32");
    CHECK(lorac_gguf_arr_i64(g, "t.arr_u32", 2) == 4000000000LL, "arr_u32[2]");
    CHECK(lorac_gguf_get_arr(g, "t.arr_f32", &et, &n) && et == LORAC_GGUF_F32 && n == 2, "arr_f32");
    CHECK(lorac_gguf_arr_f64(g, "t.arr_f32", 1) == -2.25, "arr_f32[1]");
    CHECK(lorac_gguf_get_arr(g, "t.arr_str", &et, &n) && et == LORAC_GGUF_STRING && n == 3, "arr_str");
    const char *s2 = lorac_gguf_arr_str(g, "t.arr_str", 2), *s1 = lorac_gguf_arr_str(g, "t.arr_str", 1);
    CHECK(s2 && !strcmp(s2, "gamma\xc3\xa9") && s1 && !*s1, "arr_str values");
    CHECK(lorac_gguf_get_arr(g, "t.empty", &et, &n) && n == 0, "empty array");
    CHECK(lorac_gguf_tensor_count(g) == 3, "tensor count %d", lorac_gguf_tensor_count(g));
    const lorac_tensor_desc *tx = lorac_gguf_find_tensor(g, "x"), *ty = lorac_gguf_find_tensor(g, "y.f16"),
                            *tz = lorac_gguf_find_tensor(g, "z");
    CHECK(tx && tx->dtype == LORAC_F32 && tx->ndim == 2 && tx->shape[0] == 3 && tx->shape[1] == 5, "x shape");
    CHECK(ty && ty->dtype == LORAC_F16 && ty->ndim == 1 && ty->shape[0] == 7, "y shape");
    CHECK(tz && tz->ndim == 3 && tz->shape[0] == 2 && tz->shape[1] == 3 && tz->shape[2] == 4, "z shape");
    if (tx) CHECK(!memcmp(tx->data, x, sizeof x), "x data");
    if (tz) CHECK(!memcmp(tz->data, z, sizeof z), "z data");
    for (int i = 0; i < 3; i++) {
        const lorac_tensor_desc *t = lorac_gguf_tensor(g, i);
        CHECK(t && (uintptr_t)t->data % align == 0, "tensor %d data not aligned to %u", i, align);
    }
    if (ty) {
        float *yy = tensor_f32(ty);
        for (int i = 0; yy && i < 7; i++) CHECK(yy[i] == lorac_f16_to_f32(lorac_f32_to_f16(y[i])), "y[%d] %g", i, yy[i]);
        free(yy);
    }
    lorac_gguf_close(g);

    /* b. every truncation is refused by the reader (and never crashes it) */
    if (align != 32) return;
    size_t len = 0;
    char *bytes = NULL;
    CHECK_OK(lorac_read_file(path, 1 << 20, &bytes, &len));
    int refused = 0, tried = 0;
    for (size_t cut = 0; bytes && cut < len; cut += cut < 600 ? 1 : 16) {
        const char *tp = tmp_file("trunc.gguf");
        FILE *f = fopen(tp, "wb");
        if (!f) break;
        fwrite(bytes, 1, cut, f);
        fclose(f);
        lorac_gguf *tg = NULL;
        tried++;
        if (lorac_gguf_open(tp, &tg) != LORAC_OK) refused++; /* the last tensor ends the file: no padding to lose */
        lorac_gguf_close(tg);
    }
    CHECK(tried > 100 && refused == tried, "%d of %d truncations read as a whole file", tried - refused, tried);
    free(bytes);
}

static void test_writer_refusals(void) {
    lorac_gguf_writer *w;
    CHECK_OK(lorac_gguf_writer_new(&w));
    if (!w) return;
    float x[4] = {0};
    const int64_t s[2] = {2, 2}, zero[2] = {2, 0}, s5[5] = {1, 1, 1, 1, 4};
    CHECK_OK(lorac_gguf_set_str(w, "k", "v"));
    CHECK(lorac_gguf_set_u32(w, "k", 1) == LORAC_ERR_ARG, "duplicate key accepted");
    CHECK(lorac_gguf_set_u32(w, "general.alignment", 64) == LORAC_ERR_ARG, "general.alignment as a plain key");
    CHECK(lorac_gguf_writer_set_alignment(w, 48) == LORAC_ERR_ARG, "alignment 48 accepted");
    CHECK(lorac_gguf_writer_set_alignment(w, 0) == LORAC_ERR_ARG, "alignment 0 accepted");
    CHECK_OK(lorac_gguf_add_tensor(w, "t", x, 2, s, LORAC_F32));
    CHECK(lorac_gguf_add_tensor(w, "t", x, 2, s, LORAC_F32) == LORAC_ERR_ARG, "duplicate tensor accepted");
    CHECK(lorac_gguf_add_tensor(w, "u", x, 2, zero, LORAC_F32) == LORAC_ERR_ARG, "zero dim accepted");
    CHECK(lorac_gguf_add_tensor(w, "u", x, 5, s5, LORAC_F32) == LORAC_ERR_ARG, "5 dims accepted");
    CHECK(lorac_gguf_add_tensor(w, "u", x, 2, s, LORAC_Q8_0) == LORAC_ERR_ARG, "Q8_0 accepted");
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = 0;
    CHECK(lorac_gguf_add_tensor(w, longname, x, 2, s, LORAC_F32) == LORAC_ERR_ARG, "64-byte name accepted");
    longname[63] = 0;
    CHECK_OK(lorac_gguf_add_tensor(w, longname, x, 2, s, LORAC_F32));
    /* an unwritable path: an error naming it, no file left behind */
    const char *bad = tmp_file("no/such/dir/x.gguf");
    lorac_status st = lorac_gguf_writer_write(w, bad);
    CHECK(st == LORAC_ERR_IO && strstr(lorac_last_error(), "no/such/dir"), "write to a missing dir: %s",
          lorac_last_error());
    lorac_gguf_writer_free(w);
}

/* --------------------------------------------------------- export helpers */

/* HF rotate-half row of llama.cpp's interleaved row g (head dim D). */
static int hf_row(int g, int D) {
    const int h = g / D, i = g % D;
    return h * D + (i % 2) * (D / 2) + i / 2;
}

typedef struct base_copy {
    float *w[64];
    int n;
} base_copy;

/* Copy every adapted module's base W, merge, and keep the merged W. */
static void copy_bases(lorac_model *m, base_copy *bc) {
    bc->n = 0;
    for (int i = 0; i < m->n_lin && bc->n < 64; i++) {
        if (!m->lin[i].lora) continue;
        const lorac_weight *W = m->lin[i].W;
        bc->w[bc->n] = malloc(sizeof(float) * W->n);
        memcpy(bc->w[bc->n++], W->data, sizeof(float) * W->n);
    }
}

/* Compare the exported file with the adapters on m: names, shapes, values,
 * and llama.cpp's delta against lorac's merge delta. Merges m. */
static void check_export(lorac_model *m, const char *path, const char *arch, float want_alpha, int f16) {
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    if (!g) return;
    const char *s;
    double alpha = 0;
    s = lorac_gguf_get_str(g, "general.type");
    CHECK(s && !strcmp(s, "adapter"), "general.type %s", s ? s : "(null)");
    s = lorac_gguf_get_str(g, "adapter.type");
    CHECK(s && !strcmp(s, "lora"), "adapter.type %s", s ? s : "(null)");
    s = lorac_gguf_get_str(g, "general.architecture");
    CHECK(s && !strcmp(s, arch), "general.architecture %s, want %s", s ? s : "(null)", arch);
    CHECK(lorac_gguf_kv_type(g, lorac_gguf_find_key(g, "adapter.lora.alpha")) == LORAC_GGUF_F32, "alpha not f32");
    CHECK(lorac_gguf_get_float(g, "adapter.lora.alpha", &alpha) && fabs(alpha - want_alpha) <= 1e-5 * want_alpha,
          "adapter.lora.alpha %g, want %g", alpha, (double)want_alpha);
    base_copy bc;
    copy_bases(m, &bc);
    CHECK_OK(lorac_lora_merge(m));
    int n_mod = 0, k = 0;
    for (int i = 0; i < m->n_lin; i++) {
        lorac_linear *L = &m->lin[i];
        const lorac_lora *l = L->lora;
        if (!l) continue;
        n_mod++;
        char base[96], na[128], nb[128];
        CHECK(lorac_gguf_linear_name(m, L->name, base, sizeof base), "no gguf name for %s", L->name);
        snprintf(na, sizeof na, "%s.lora_a", base);
        snprintf(nb, sizeof nb, "%s.lora_b", base);
        const lorac_tensor_desc *ta = lorac_gguf_find_tensor(g, na), *tb = lorac_gguf_find_tensor(g, nb);
        CHECK(ta && tb, "%s / %s missing", na, nb);
        if (!ta || !tb) continue;
        const int R = l->parts * l->r;
        CHECK(ta->ndim == 2 && ta->shape[0] == R && ta->shape[1] == L->in, "%s is [%lld,%lld], want [%d,%d]", na,
              (long long)ta->shape[0], (long long)ta->shape[1], R, L->in);
        CHECK(tb->ndim == 2 && tb->shape[0] == L->out && tb->shape[1] == R, "%s is [%lld,%lld], want [%d,%d]", nb,
              (long long)tb->shape[0], (long long)tb->shape[1], L->out, R);
        CHECK(ta->dtype == (f16 ? LORAC_F16 : LORAC_F32) && tb->dtype == ta->dtype, "%s dtype", na);
        if (ta->numel != (int64_t)R * L->in || tb->numel != (int64_t)L->out * R) continue;
        float *A = tensor_f32(ta), *B = tensor_f32(tb);
        const int qk = !strcmp(arch, "llama") && (strstr(L->name, "q_proj") || strstr(L->name, "k_proj"));
        const int D = m->cfg.head_dim, ob = L->out / l->parts;
        /* values: lora_a == A; lora_b == B (un-permuted for q/k; block-diagonal x parts for split) */
        double ea = 0, eb = 0;
        for (size_t j = 0; j < l->A.n; j++) ea = fmax(ea, fabs(A[j] - l->A.data[j]));
        for (int o = 0; o < L->out; o++) {
            const int src = qk ? hf_row(o, D) : o; /* GGUF row o holds HF row src */
            for (int c = 0; c < R; c++) {
                const int p = src / ob, kk = c - p * l->r;
                const float want = kk >= 0 && kk < l->r ? (float)l->parts * l->B.data[(size_t)src * l->r + kk] : 0.0f;
                eb = fmax(eb, fabs(B[(size_t)o * R + c] - want));
            }
        }
        CHECK(ea <= (f16 ? 1e-3 : 0), "%s differs from A by %g", na, ea);
        CHECK(eb <= (f16 ? 1e-3 : 0), "%s differs from B by %g", nb, eb);
        /* llama.cpp: delta = (alpha / rank) B A, rank = lora_b's ne[0] = R; un-permute its rows.
         * lorac's delta is W_merged - W_base, exact up to the float rounding of the two stores
         * (F32); with F16 tensors, within 0.3% of the largest |delta|. */
        double err = 0, big = 0, scale_ll = alpha / R;
        int bad = 0;
        for (int o = 0; o < L->out; o++) {
            const int hr = qk ? hf_row(o, D) : o;
            for (int c = 0; c < L->in; c++) {
                double d = 0;
                for (int t = 0; t < R; t++) d += (double)B[(size_t)o * R + t] * A[(size_t)t * L->in + c];
                d *= scale_ll;
                const size_t at = L->w_in_out ? (size_t)c * L->out + hr : (size_t)hr * L->in + c;
                const double wm = L->W->data[at], wb = bc.w[k][at], ref = wm - wb, e = fabs(d - ref);
                bad += e > 8 * FLT_EPSILON * (fabs(wm) + fabs(wb)) + 1e-5 * fabs(ref);
                err = fmax(err, e);
                big = fmax(big, fabs(ref));
            }
        }
        if (f16)
            CHECK(err <= 3e-3 * big, "%s: llama.cpp delta differs from lorac's merge by %g (max |delta| %g)", base, err, big);
        else
            CHECK(bad == 0 && big > 0, "%s: llama.cpp delta differs from lorac's merge at %d elements (max err %g, "
                  "max |delta| %g)", base, bad, err, big);
        free(A);
        free(B);
        free(bc.w[k++]);
    }
    CHECK(lorac_gguf_tensor_count(g) == 2 * n_mod, "%d tensors for %d modules", lorac_gguf_tensor_count(g), n_mod);
    lorac_gguf_close(g);
}

static lorac_model *load(const char *rel) {
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(test_src_path(rel), &m));
    return m;
}

/* A copy of a PEFT adapter dir with edits to its config (a symlinked safetensors). */
static const char *edited_adapter(const char *src_rel, const char *name, void (*edit)(cJSON *)) {
    static char dir[700];
    char p[800], q[800];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    CHECK_OK(lorac_mkdirs(dir));
    snprintf(p, sizeof p, "%s/adapter_config.json", test_src_path(src_rel));
    cJSON *j = test_read_json(p);
    if (!j) return dir;
    edit(j);
    char *txt = cJSON_Print(j);
    snprintf(q, sizeof q, "%s/adapter_config.json", dir);
    CHECK_OK(lorac_write_atomic(q, txt, strlen(txt)));
    free(txt);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", test_src_path(src_rel));
    snprintf(q, sizeof q, "%s/adapter_model.safetensors", dir);
    unlink(q);
    CHECK(symlink(p, q) == 0, "symlink %s", q);
    return dir;
}

static void set_rslora(cJSON *j) { cJSON_ReplaceItemInObject(j, "use_rslora", cJSON_CreateTrue()); }
static void set_mts(cJSON *j) {
    cJSON *a = cJSON_CreateArray();
    cJSON_AddItemToArray(a, cJSON_CreateString("lm_head"));
    cJSON_ReplaceItemInObject(j, "modules_to_save", a);
}

/* ---------------------------------------------------------------- b. Llama */

static void test_llama_peft(void) {
    static const char *const mods[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    static const int rows[] = {32, 16, 16, 32, 56, 56, 32}, cols[] = {32, 32, 32, 32, 32, 32, 56};
    lorac_model *m = load(LLAMA);
    if (!m) return;
    lorac_gguf_export_info info;
    const char *path = tmp_file("llama.gguf");
    CHECK_OK(lorac_export_gguf(m, test_src_path(LLAMA_PEFT), path, LORAC_F32, &info));
    CHECK(info.n_tensors == 28 && info.n_modules == 14 && info.r == 4 && info.alpha == 8.0f && info.n_fused == 0,
          "info: %d tensors, %d modules, r %d, alpha %g", info.n_tensors, info.n_modules, info.r, (double)info.alpha);
    CHECK(!strcmp(info.arch, "llama"), "arch %s", info.arch);
    /* the exact tensor list, in order, and shapes as llama.cpp checks them */
    lorac_gguf *g = NULL;
    CHECK_OK(lorac_gguf_open(path, &g));
    if (g) {
        CHECK(lorac_gguf_tensor_count(g) == 28, "tensor count %d", lorac_gguf_tensor_count(g));
        int i = 0;
        for (int l = 0; l < 2; l++)
            for (int k = 0; k < 7; k++)
                for (int ab = 0; ab < 2; ab++, i++) {
                    char want[96];
                    snprintf(want, sizeof want, "blk.%d.%s.weight.lora_%c", l, mods[k], ab ? 'b' : 'a');
                    const lorac_tensor_desc *t = lorac_gguf_tensor(g, i);
                    CHECK(t && !strcmp(t->name, want), "tensor %d is %s, want %s", i, t ? t->name : "-", want);
                    /* ggml ne: lora_a [in, r], lora_b [r, out] == row-major [r, in], [out, r] */
                    const int64_t d0 = ab ? rows[k] : 4, d1 = ab ? 4 : cols[k];
                    CHECK(t && t->ndim == 2 && t->shape[0] == d0 && t->shape[1] == d1, "%s is [%lld,%lld]", want,
                          t ? (long long)t->shape[0] : -1, t ? (long long)t->shape[1] : -1);
                }
        CHECK(lorac_gguf_get_int(g, "general.alignment", &(int64_t){0}), "no general.alignment");
        lorac_gguf_close(g);
    }
    check_export(m, path, "llama", 8.0f, 0);
    lorac_model_free(m);

    /* F16 */
    m = load(LLAMA);
    if (m) {
        CHECK_OK(lorac_export_gguf(m, test_src_path(LLAMA_PEFT), tmp_file("llama16.gguf"), LORAC_F16, &info));
        check_export(m, tmp_file("llama16.gguf"), "llama", 8.0f, 1);
        lorac_model_free(m);
    }
    /* rsLoRA: scale alpha/sqrt(r) = 8/2 = 4 folded into alpha = scale * r = 16 */
    m = load(LLAMA);
    if (m) {
        const char *dir = edited_adapter(LLAMA_PEFT, "rslora", set_rslora);
        CHECK_OK(lorac_export_gguf(m, dir, tmp_file("rslora.gguf"), LORAC_F32, &info));
        CHECK(info.alpha == 16.0f, "rsLoRA alpha %g, want 16", (double)info.alpha);
        check_export(m, tmp_file("rslora.gguf"), "llama", 16.0f, 0);
        lorac_model_free(m);
    }
    /* modules_to_save: refused before anything is read, naming the module */
    m = load(LLAMA);
    if (m) {
        const char *dir = edited_adapter(LLAMA_PEFT, "mts", set_mts);
        lorac_status st = lorac_export_gguf(m, dir, tmp_file("mts.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "lm_head") &&
                  strstr(lorac_last_error(), "modules_to_save"), "modules_to_save: %s", lorac_last_error());
        CHECK(!lorac_file_exists(tmp_file("mts.gguf")), "a file was written for a refused adapter");
        lorac_model_free(m);
    }
}

/* Fill every adapter's B (zero after init) with reproducible values. */
static void fill_b(lorac_model *m, uint64_t seed) {
    lorac_rng r;
    lorac_rng_seed(&r, seed);
    for (int i = 0; i < m->n_lin; i++) {
        lorac_lora *l = m->lin[i].lora;
        if (!l) continue;
        for (size_t j = 0; j < l->B.n; j++) l->B.data[j] = 0.1f * lorac_rng_normal(&r);
    }
}

static lorac_status apply(lorac_model *m, const char *targets, int r, float alpha, int split, lorac_bias_mode bias) {
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = r;
    c.alpha = alpha;
    c.split_fused = split;
    c.bias = bias;
    LORAC_TRY(lorac_lora_parse_list(targets, c.targets, &c.n_targets, "targets"));
    LORAC_TRY(lorac_lora_apply(m, &c, NULL));
    fill_b(m, 7);
    return LORAC_OK;
}

/* ------------------------------------------------------------ c. GPT-2 */

static void test_gpt2(void) {
    lorac_gguf_export_info info;
    lorac_model *m = load(GPT2);
    if (m) { /* PEFT Conv1D adapter (fan_in_fan_out) */
        CHECK_OK(lorac_export_gguf(m, test_src_path(GPT2_PEFT), tmp_file("gpt2.gguf"), LORAC_F32, &info));
        CHECK(info.n_tensors == 16 && !strcmp(info.arch, "gpt2"), "gpt2: %d tensors, arch %s", info.n_tensors, info.arch);
        lorac_gguf *g = NULL;
        CHECK_OK(lorac_gguf_open(tmp_file("gpt2.gguf"), &g));
        const char *names[] = {"blk.1.attn_qkv.weight.lora_b", "blk.1.attn_output.weight.lora_a",
                               "blk.0.ffn_up.weight.lora_b", "blk.0.ffn_down.weight.lora_a"};
        for (int i = 0; g && i < 4; i++) CHECK(lorac_gguf_find_tensor(g, names[i]), "%s missing", names[i]);
        lorac_gguf_close(g);
        check_export(m, tmp_file("gpt2.gguf"), "gpt2", 8.0f, 0);
        lorac_model_free(m);
    }
    m = load(GPT2);
    if (m) { /* split q|k|v (parts 3) plus a plain module: one rank-3r block-diagonal pair on attn_qkv */
        CHECK_OK(apply(m, "c_attn,c_fc", 2, 6.0f, 1, LORAC_BIAS_NONE));
        CHECK(m->layers[0].qkv->lora && m->layers[0].qkv->lora->parts == 3, "split_fused did not split c_attn");
        CHECK_OK(lorac_export_gguf_model(m, tmp_file("split.gguf"), LORAC_F32, &info));
        CHECK(info.n_fused == 2 && info.alpha == 6.0f && info.n_tensors == 8, "split: %d fused, alpha %g, %d tensors",
              info.n_fused, (double)info.alpha, info.n_tensors);
        lorac_gguf *g = NULL;
        CHECK_OK(lorac_gguf_open(tmp_file("split.gguf"), &g));
        const lorac_tensor_desc *a = g ? lorac_gguf_find_tensor(g, "blk.0.attn_qkv.weight.lora_a") : NULL,
                                *b = g ? lorac_gguf_find_tensor(g, "blk.0.attn_qkv.weight.lora_b") : NULL;
        CHECK(a && a->shape[0] == 6 && a->shape[1] == 32, "split lora_a shape");
        CHECK(b && b->shape[0] == 96 && b->shape[1] == 6, "split lora_b shape");
        if (b && b->numel == 96 * 6) { /* block-diagonal: zero outside row block p x column block p */
            const float *B = b->data;
            int off = 0;
            for (int o = 0; o < 96; o++)
                for (int c = 0; c < 6; c++) off += (c / 2 != o / 32) && B[o * 6 + c] != 0.0f;
            CHECK(off == 0, "%d non-zeros outside the diagonal blocks", off);
        }
        lorac_gguf_close(g);
        check_export(m, tmp_file("split.gguf"), "gpt2", 6.0f, 0);
        lorac_model_free(m);
    }
    m = load(GPT2);
    if (m) { /* bias = all: trained biases have no place in a llama.cpp LoRA */
        CHECK_OK(apply(m, "c_attn", 2, 2.0f, 0, LORAC_BIAS_ALL));
        lorac_status st = lorac_export_gguf_model(m, tmp_file("bias.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), ".bias'"), "bias: %s", lorac_last_error());
        lorac_model_free(m);
    }
    m = load(GPT2);
    if (m) { /* GPT-2's lm_head is tied */
        CHECK_OK(apply(m, "lm_head", 2, 2.0f, 0, LORAC_BIAS_NONE));
        lorac_status st = lorac_export_gguf_model(m, tmp_file("gtied.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "tied"), "tied gpt2: %s", lorac_last_error());
        lorac_model_free(m);
    }
}

/* ------------------------------------------- d. lm_head, heads, encoders */

static void test_heads(void) {
    lorac_gguf_export_info info;
    lorac_model *m = load(LLAMA);
    if (m) { /* untied lm_head -> output.weight */
        CHECK_OK(apply(m, "q_proj,lm_head", 3, 5.0f, 0, LORAC_BIAS_NONE));
        CHECK_OK(lorac_export_gguf_model(m, tmp_file("head.gguf"), LORAC_F32, &info));
        lorac_gguf *g = NULL;
        CHECK_OK(lorac_gguf_open(tmp_file("head.gguf"), &g));
        const lorac_tensor_desc *t = g ? lorac_gguf_find_tensor(g, "output.weight.lora_b") : NULL;
        CHECK(t && t->shape[0] == 103 && t->shape[1] == 3, "output.weight.lora_b");
        lorac_gguf_close(g);
        check_export(m, tmp_file("head.gguf"), "llama", 5.0f, 0);
        lorac_model_free(m);
    }
    m = load(LLAMA_TIED);
    if (m) {
        CHECK_OK(apply(m, "lm_head", 2, 2.0f, 0, LORAC_BIAS_NONE));
        lorac_status st = lorac_export_gguf_model(m, tmp_file("tied.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "lm_head") && strstr(lorac_last_error(), "tied"),
              "tied lm_head: %s", lorac_last_error());
        lorac_model_free(m);
    }
    m = load(LLAMA);
    if (m) { /* a classification head (LoRA on the blocks only) */
        CHECK_OK(lorac_model_add_head(m, 3, 0, LORAC_HEAD_INIT_HF, 1));
        CHECK_OK(apply(m, "q_proj", 2, 2.0f, 0, LORAC_BIAS_NONE));
        lorac_status st = lorac_export_gguf_model(m, tmp_file("cls.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "'score'"), "score head: %s", lorac_last_error());
        CHECK(!lorac_file_exists(tmp_file("cls.gguf")), "a file was written for a classifier");
        lorac_model_free(m);
    }
    m = load(BERT);
    if (m) {
        CHECK_OK(apply(m, "query", 2, 2.0f, 0, LORAC_BIAS_NONE));
        lorac_status st = lorac_export_gguf_model(m, tmp_file("bert.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "encoder"), "bert: %s", lorac_last_error());
        st = lorac_export_gguf(m, test_src_path(LLAMA_PEFT), tmp_file("bert.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_UNSUPPORTED && strstr(lorac_last_error(), "encoder"), "bert dir: %s", lorac_last_error());
        lorac_model_free(m);
    }
    m = load(LLAMA);
    if (m) { /* nothing to export; bad dtype */
        lorac_status st = lorac_export_gguf_model(m, tmp_file("none.gguf"), LORAC_F32, NULL);
        CHECK(st == LORAC_ERR_ARG && strstr(lorac_last_error(), "no LoRA"), "no adapter: %s", lorac_last_error());
        CHECK_OK(apply(m, "v_proj", 2, 2.0f, 0, LORAC_BIAS_NONE));
        st = lorac_export_gguf_model(m, tmp_file("q8.gguf"), LORAC_Q8_0, NULL);
        CHECK(st == LORAC_ERR_ARG, "Q8_0 export accepted");
        lorac_model_free(m);
    }
}

/* ---------------------------------------- e. a GGUF base, in llama.cpp's row order */

/* convert_hf_to_gguf.py's LlamaModel.permute, index for index:
 * w.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols) */
static void llama_cpp_permute(float *dst, const float *src, int rows, int cols, int heads) {
    const int half = rows / heads / 2;
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < half; j++)
            for (int s = 0; s < 2; s++) /* dst[h][j][s] = src[h][s][j] */
                memcpy(dst + ((size_t)(h * half + j) * 2 + s) * cols, src + ((size_t)(h * 2 + s) * half + j) * cols,
                       sizeof(float) * (size_t)cols);
}

/* Write tiny_llama as llama.cpp's converter would (q/k permuted), load it as
 * a GGUF base, export the PEFT adapter against it, and check in llama.cpp's
 * own row order: base.gguf W + (alpha/r) B_gguf A_gguf == permute(lorac's merge,
 * which is in HF order). */
static void test_gguf_base(void) {
    static const char *const hf[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj", "input_layernorm",
                                     "post_attention_layernorm"};
    static const char *const gg[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
                                     "attn_norm", "ffn_norm"};
    lorac_st *st = NULL;
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", test_src_path(LLAMA));
    CHECK_OK(lorac_st_open(p, &st));
    if (!st) return;
    lorac_gguf_writer *w;
    CHECK_OK(lorac_gguf_writer_new(&w));
    CHECK_OK(lorac_gguf_set_str(w, "general.architecture", "llama"));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.context_length", 64));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.embedding_length", 32));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.block_count", 2));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.feed_forward_length", 56));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.attention.head_count", 4));
    CHECK_OK(lorac_gguf_set_u32(w, "llama.attention.head_count_kv", 2));
    CHECK_OK(lorac_gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f));
    float *keep[32];
    int nk = 0;
    const char *top[][2] = {{"model.embed_tokens.weight", "token_embd.weight"}, {"model.norm.weight", "output_norm.weight"},
                            {"lm_head.weight", "output.weight"}};
    for (int i = 0; i < 3; i++) {
        const lorac_tensor_desc *t = test_st_need(st, top[i][0]);
        keep[nk] = test_st_f32(st, top[i][0], NULL);
        CHECK_OK(lorac_gguf_add_tensor(w, top[i][1], keep[nk++], t->ndim, t->shape, LORAC_F32));
    }
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 9; k++) {
            char hn[128], gn[64];
            snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, hf[k]);
            snprintf(gn, sizeof gn, "blk.%d.%s.weight", l, gg[k]);
            const lorac_tensor_desc *t = test_st_need(st, hn);
            float *x = test_st_f32(st, hn, NULL);
            if (k < 2) { /* q: n_head 4; k: n_kv_head 2 */
                float *y = malloc(sizeof(float) * (size_t)t->numel);
                llama_cpp_permute(y, x, (int)t->shape[0], (int)t->shape[1], k == 0 ? 4 : 2);
                free(x);
                x = y;
            }
            keep[nk++] = x;
            /* q/k in F16: lorac binds F32 GGUF tensors as views, which (as of this test) skips its un-permute */
            CHECK_OK(lorac_gguf_add_tensor(w, gn, x, t->ndim, t->shape, k < 2 ? LORAC_F16 : LORAC_F32));
        }
    const char *base_path = tmp_file("tiny_llama.gguf");
    CHECK_OK(lorac_gguf_writer_write(w, base_path));
    lorac_gguf_writer_free(w);

    lorac_model *mh = load(LLAMA), *mg = NULL;
    CHECK_OK(lorac_model_load(base_path, &mg));
    if (mh && mg) {
        /* lorac's reader undoes the permutation: the GGUF base is the HF base (to F16 rounding) */
        const lorac_weight *a = lorac_model_find_weight(mg, "model.layers.1.self_attn.k_proj.weight"),
                           *b = lorac_model_find_weight(mh, "model.layers.1.self_attn.k_proj.weight");
        double e = a && b ? 0 : 1;
        for (size_t i = 0; a && b && i < a->n; i++) e = fmax(e, fabs(a->data[i] - b->data[i]) / (fabs(b->data[i]) + 1e-6));
        CHECK(e <= 1e-3, "GGUF base k_proj differs from HF k_proj by %g (rel): permutation mismatch", e);
        lorac_gguf_export_info info;
        CHECK_OK(lorac_export_gguf(mg, test_src_path(LLAMA_PEFT), tmp_file("on_gguf.gguf"), LORAC_F32, &info));
        CHECK_OK(lorac_lora_merge(mg));
        lorac_gguf *ad = NULL, *bg = NULL;
        CHECK_OK(lorac_gguf_open(tmp_file("on_gguf.gguf"), &ad));
        CHECK_OK(lorac_gguf_open(base_path, &bg));
        for (int l = 0; ad && bg && l < 2; l++)
            for (int k = 0; k < 2; k++) {
                char n[96], hn[128];
                snprintf(n, sizeof n, "blk.%d.%s.weight", l, gg[k]);
                snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, hf[k]);
                const lorac_weight *merged = lorac_model_find_weight(mg, hn);
                const lorac_tensor_desc *W = lorac_gguf_find_tensor(bg, n);
                snprintf(p, sizeof p, "%s.lora_a", n);
                const lorac_tensor_desc *A = lorac_gguf_find_tensor(ad, p);
                snprintf(p, sizeof p, "%s.lora_b", n);
                const lorac_tensor_desc *B = lorac_gguf_find_tensor(ad, p);
                CHECK(merged && W && A && B, "%s missing", n);
                if (!merged || !W || !A || !B) continue;
                const int rows = (int)W->shape[0], cols = (int)W->shape[1], r = (int)A->shape[0];
                float *want = malloc(sizeof(float) * merged->n);
                llama_cpp_permute(want, merged->data, rows, cols, k == 0 ? 4 : 2);
                float *w0 = tensor_f32(W);
                const float *a0 = A->data, *b0 = B->data;
                int bad = 0;
                for (int o = 0; o < rows; o++)
                    for (int c = 0; c < cols; c++) {
                        double d = 0;
                        for (int t = 0; t < r; t++) d += (double)b0[o * r + t] * a0[t * cols + c];
                        const double got = w0[o * cols + c] + info.alpha / r * d, ref = want[(size_t)o * cols + c];
                        bad += fabs(got - ref) > 8 * FLT_EPSILON * (fabs(ref) + fabs(w0[o * cols + c])) + 1e-7;
                    }
                CHECK(bad == 0, "%s: base.gguf + llama.cpp delta != permuted lorac merge at %d elements", n, bad);
                free(want);
                free(w0);
            }
        lorac_gguf_close(ad);
        lorac_gguf_close(bg);
    }
    lorac_model_free(mh);
    lorac_model_free(mg);
    for (int i = 0; i < nk; i++) free(keep[i]);
    lorac_st_close(st);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "%s", test_tmpdir());
    test_writer_roundtrip(32);
    test_writer_roundtrip(64);
    test_writer_refusals();
    test_llama_peft();
    test_gpt2();
    test_heads();
    test_gguf_base();
    return test_summary("test_gguf_export");
}
