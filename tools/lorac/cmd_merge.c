/* lorac merge - fold an adapter into its base model and write the result as
 * an ordinary Hugging Face checkpoint (PEFT's merge_and_unload + save). */
#include <stdio.h>

#include "cli.h"
#include "core/util.h"
#include "lora/adapter_io.h"
#include "lora/merge.h"

static const cli_opt merge_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"adapter", "DIR", "adapter directory (lorac train or PEFT save_pretrained) (required)"},
    {"out", "DIR", "output directory for config.json, model.safetensors and tokenizer files (required)"},
    {"tokenizer", "DIR", "copy tokenizer files from DIR (default: the base model directory)"},
    {"overwrite", NULL, "allow --out to replace a model.safetensors already there"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {NULL, NULL, NULL}};

int cmd_merge(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "merge", "usage: lorac merge --model PATH --adapter DIR --out DIR [options]", merge_opts, argc, argv);
    cli_set_threads(&a);
    const char *ad = cli_str(&a, "adapter", NULL), *out = cli_str(&a, "out", NULL);
    if (!ad) cli_die("merge", EXIT_USAGE, "--adapter is required (a directory with adapter_config.json)");
    if (!out) cli_die("merge", EXIT_USAGE, "--out is required (the directory to write the merged model to)");
    char probe[1200];
    if (lorac_file_exists(lorac_path_join(probe, sizeof probe, out, "model.safetensors")) && !cli_has(&a, "overwrite"))
        cli_die("merge", EXIT_USAGE, "%s already holds a model.safetensors; hint: choose another --out or pass --overwrite", out);

    lorac_model *m;
    cli_load_model(&a, &m, NULL);
    cli_check("merge", lorac_adapter_load(m, ad, NULL));
    int n = 0;
    for (int i = 0; i < m->n_lin; i++) n += m->lin[i].lora != NULL;
    cli_check("merge", lorac_lora_merge(m));
    cli_check("merge", lorac_model_save_merged(m, out, cli_str(&a, "tokenizer", NULL)));
    fprintf(stderr, "merged %d LoRA modules of %s into %s\n", n, ad, out);
    lorac_model_free(m);
    return 0;
}
