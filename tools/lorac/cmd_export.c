/* lorac export - write an adapter in another format. --format gguf: a
 * llama.cpp LoRA GGUF (`llama-cli -m BASE.gguf --lora FILE.gguf`), see
 * src/lora/export_gguf.h for what it holds. On the public API only
 * (lorac_llm_export_gguf). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const cli_opt export_opts[] = {
    {"model", "PATH", "base model the adapter was trained on: Hugging Face directory or .gguf file (required)"},
    {"adapter", "DIR", "adapter directory (lorac train or PEFT save_pretrained) (required)"},
    {"format", "FMT", "output format: gguf (llama.cpp LoRA adapter; the default)"},
    {"out", "FILE", "output file, e.g. adapter.gguf (required)"},
    {"type", "T", "tensor type: f32 (default) or f16"},
    {"overwrite", NULL, "allow --out to replace an existing file"},
    {NULL, NULL, NULL}};

static const char export_usage[] =
    "usage: lorac export --model PATH --adapter DIR --format gguf --out FILE.gguf [options]\n"
    "\n"
    "Writes the adapter as a llama.cpp LoRA GGUF: load it with\n"
    "  llama-cli -m BASE.gguf --lora FILE.gguf\n"
    "where BASE.gguf is the same base model converted by llama.cpp. Tensors are\n"
    "named after llama.cpp's (blk.N.attn_q.weight.lora_a / .lora_b); adapter.lora.alpha\n"
    "is scale * r (rsLoRA's alpha/sqrt(r) folded in); Llama q/k rows are permuted into\n"
    "llama.cpp's RoPE order; a GPT-2 --split-qkv adapter becomes one rank-3r LoRA on\n"
    "attn_qkv. Refused: encoders (BERT), classification heads, modules_to_save, trained\n"
    "biases, LoRA on a tied lm_head.";

/* The directory part of path exists (the file is written next to it). */
static int parent_exists(const char *path, char *dir, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash) return snprintf(dir, n, "."), 1;
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    if (len >= n) return 0;
    memcpy(dir, path, len);
    dir[len] = 0;
    return access(dir, F_OK) == 0;
}

int cmd_export(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "export", export_usage, export_opts, argc, argv);
    const char *ad = cli_str(&a, "adapter", NULL), *out = cli_str(&a, "out", NULL);
    const char *fmt = cli_str(&a, "format", "gguf"), *type = cli_str(&a, "type", "f32");
    if (strcmp(fmt, "gguf") != 0)
        cli_die("export", EXIT_USAGE, "--format '%s' is not supported; hint: --format gguf (llama.cpp LoRA adapter)", fmt);
    int f16 = 0;
    if (!strcmp(type, "f16") || !strcmp(type, "F16")) f16 = 1;
    else if (strcmp(type, "f32") != 0 && strcmp(type, "F32") != 0)
        cli_die("export", EXIT_USAGE, "--type '%s' is not supported; hint: f32 or f16", type);
    if (!cli_str(&a, "model", NULL))
        cli_die("export", EXIT_USAGE, "--model is required (the base model the adapter was trained on)");
    if (!ad) cli_die("export", EXIT_USAGE, "--adapter is required (a directory with adapter_config.json)");
    if (!out) cli_die("export", EXIT_USAGE, "--out is required (the .gguf file to write)");
    if (access(out, F_OK) == 0 && !cli_has(&a, "overwrite"))
        cli_die("export", EXIT_USAGE, "%s already exists; hint: choose another --out or pass --overwrite", out);
    char dir[1200];
    if (!parent_exists(out, dir, sizeof dir))
        cli_die("export", 1, "%s: directory '%s' does not exist; hint: create it first", out, dir);

    lorac_llm *llm;
    cli_open(&a, 0, &llm);
    lorac_llm_export_info info;
    cli_check("export", lorac_llm_export_gguf(llm, ad, out, f16, &info));
    char fused[64] = "";
    if (info.n_fused) snprintf(fused, sizeof fused, "; %d split q|k|v as rank %d", info.n_fused, 3 * info.r);
    printf("wrote %s: %d tensors (%d LoRA modules, r %d%s), arch %s, adapter.lora.alpha %g, %s, %llu bytes\n", out,
           info.n_tensors, info.n_modules, info.r, fused, info.arch, (double)info.alpha, f16 ? "F16" : "F32",
           (unsigned long long)info.bytes);
    lorac_llm_close(llm);
    return 0;
}
