/* harness_config.c - fuzz entry points for the JSON configs: a model's
 * config.json and an adapter directory (adapter_config.json, optionally with
 * adapter_model.safetensors applied to a tiny fixture model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lora/adapter_io.h"
#include "models/config.h"
#include "models/model.h"

/* config.json */
int lorac_fuzz_config_json(const uint8_t *data, size_t size) {
    fuzz_reset();
    const char *path = fuzz_write("cfg/config.json", data, size);
    lorac_config c;
    (void)lorac_config_load_json(path, &c);
    return 0;
}

/* adapter_config.json [SEP adapter_model.safetensors]. With the second part
 * the adapter is loaded onto a tiny fixture model (tiny_llama, tiny_bert or
 * tiny_distilbert when the config text names that family, else tiny_gpt2). */
int lorac_fuzz_adapter_config(const uint8_t *data, size_t size) {
    fuzz_part part[2];
    int n = fuzz_split(data, size, part, 2);
    fuzz_reset();
    fuzz_write("adapter/adapter_config.json", part[0].p, part[0].n);
    const char *dir = fuzz_path("adapter");
    lorac_lora_config c;
    int n_classes = 0;
    char *labels[64] = {0};
    (void)lorac_adapter_read_config(dir, &c, &n_classes, labels, 64);
    for (int i = 0; i < 64; i++) free(labels[i]);
    if (n < 2) return 0;

    fuzz_write("adapter/adapter_model.safetensors", part[1].p, part[1].n);
    const char *model = "models/tiny_gpt2";
    char cfg[4096];
    size_t k = part[0].n < sizeof cfg - 1 ? part[0].n : sizeof cfg - 1;
    memcpy(cfg, part[0].p, k);
    cfg[k] = 0;
    if (strstr(cfg, "distilbert")) model = "models/tiny_distilbert";
    else if (strstr(cfg, "bert")) model = "models/tiny_bert";
    else if (strstr(cfg, "llama")) model = "models/tiny_llama";
    lorac_model *m = NULL;
    if (lorac_model_load(fuzz_fixture(model), &m) != LORAC_OK) {
        fprintf(stderr, "fuzz: cannot load the fixture %s: %s\n", fuzz_fixture(model), lorac_last_error());
        abort(); /* a setup problem, not a finding */
    }
    lorac_lora_config got;
    (void)lorac_adapter_load(m, dir, &got);
    lorac_model_free(m);
    return 0;
}
