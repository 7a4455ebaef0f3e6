/* harness_tensors.c - fuzz entry points for the tensor files: safetensors
 * (one file, or a model.safetensors.index.json with its shards) and GGUF
 * (metadata, tensor infos, and the model config and tokenizer read from it). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "models/config.h"

/* Convert every tensor of a file that opened (the descriptors must point
 * inside the mapping). Large tensors are skipped to keep an input fast. */
static void touch_tensor(const lorac_tensor_desc *t) {
    static float buf[1 << 16];
    if (!t || t->numel <= 0 || t->numel > (int64_t)(sizeof buf / sizeof buf[0])) return;
    lorac_to_f32(buf, t->data, t->dtype, t->numel);
}

/* safetensors. One part: the bytes of x.safetensors. Several parts: the first
 * is model.safetensors.index.json, the next ones the shards a.safetensors,
 * b.safetensors, c.safetensors, opened through the directory. */
int lorac_fuzz_safetensors(const uint8_t *data, size_t size) {
    fuzz_part part[4];
    int n = fuzz_split(data, size, part, 4);
    fuzz_reset();
    const char *path;
    if (n == 1) {
        path = fuzz_write("x.safetensors", data, size);
    } else {
        static const char *const shard[] = {"st/a.safetensors", "st/b.safetensors", "st/c.safetensors"};
        fuzz_write("st/model.safetensors.index.json", part[0].p, part[0].n);
        for (int i = 1; i < n; i++) fuzz_write(shard[i - 1], part[i].p, part[i].n);
        path = fuzz_path("st");
    }
    lorac_st *st = NULL;
    if (lorac_st_open(path, &st) == LORAC_OK) {
        for (int i = 0; i < lorac_st_count(st); i++) {
            const lorac_tensor_desc *t = lorac_st_get(st, i);
            touch_tensor(t);
            if (lorac_st_find(st, t->name) == NULL) abort(); /* every tensor can be found by name */
            (void)lorac_st_path_of(st, t);
        }
        (void)lorac_st_metadata(st, "format");
    }
    lorac_st_close(st);
    return 0;
}

/* GGUF: the bytes of x.gguf. When it opens, every metadata value is read
 * through the typed getters, every tensor converted, and the model config
 * and tokenizer are read from it as `lorac info model.gguf` would. */
int lorac_fuzz_gguf(const uint8_t *data, size_t size) {
    fuzz_reset();
    const char *path = fuzz_write("x.gguf", data, size);
    lorac_gguf *g = NULL;
    if (lorac_gguf_open(path, &g) == LORAC_OK) {
        for (int i = 0; i < lorac_gguf_kv_count(g); i++) {
            const char *key = lorac_gguf_key(g, i);
            int64_t iv;
            double fv;
            int b;
            lorac_gguf_get_int(g, key, &iv);
            lorac_gguf_get_float(g, key, &fv);
            lorac_gguf_get_bool(g, key, &b);
            (void)lorac_gguf_get_str(g, key);
            lorac_gguf_type et;
            uint64_t len;
            if (lorac_gguf_get_arr(g, key, &et, &len)) {
                uint64_t idx[] = {0, 1, len / 2, len ? len - 1 : 0, len, len + 1};
                for (size_t k = 0; k < sizeof idx / sizeof idx[0]; k++) {
                    const char *s = lorac_gguf_arr_str(g, key, idx[k]);
                    uint64_t sl = lorac_gguf_arr_str_len(g, key, idx[k]);
                    if (s && sl) (void)s[sl - 1];
                    (void)lorac_gguf_arr_f64(g, key, idx[k]);
                    (void)lorac_gguf_arr_i64(g, key, idx[k]);
                }
            }
        }
        for (int i = 0; i < lorac_gguf_tensor_count(g); i++) {
            const lorac_tensor_desc *t = lorac_gguf_tensor(g, i);
            touch_tensor(t);
            if (lorac_gguf_find_tensor(g, t->name) == NULL) abort();
        }
        lorac_config c;
        (void)lorac_config_from_gguf(g, &c);
        lorac_tokenizer *tok = NULL;
        if (lorac_tokenizer_from_gguf(g, &tok) == LORAC_OK) {
            static const char text[] = "Hello, world! <s> \xe2\x96\x81" "caf\xc3\xa9 \xff" " 12";
            int *ids = NULL, nid = 0;
            if (lorac_tokenizer_encode(tok, text, sizeof text - 1, 1, &ids, &nid) == LORAC_OK) {
                char *out = NULL;
                size_t olen;
                if (lorac_tokenizer_decode(tok, ids, nid, 0, &out, &olen) == LORAC_OK) free(out);
            }
            free(ids);
        }
        lorac_tokenizer_free(tok);
    }
    lorac_gguf_close(g);
    return 0;
}
