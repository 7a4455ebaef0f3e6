/* lorac - LoRA fine-tuning in C. Dispatches to the sub-commands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_modules(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_serve(int argc, char **argv);

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"train", cmd_train, "fine-tune with LoRA, evaluate, save the adapter"},
    {"eval", cmd_eval, "evaluate a model (with an adapter) on a data file"},
    {"generate", cmd_generate, "generate text (with or without an adapter)"},
    {"info", cmd_info, "module tree and trainable-parameter count"},
    {"modules", cmd_modules, "list the module names LoRA can target"},
    {"merge", cmd_merge, "merge an adapter into its base model and write a checkpoint"},
    {"export", cmd_export, "write an adapter as a llama.cpp LoRA GGUF (--format gguf)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text (or the text of ids) with a model's tokenizer"},
    {"serve", cmd_serve, "serve the model and its adapters over HTTP (OpenAI-compatible API)"},
    {"compare", cmd_compare, "train several methods (LoRA variants, last layers, head, full) on the same data; one table"},
};

static void usage(FILE *f) {
    fprintf(f, "lorac %s - LoRA fine-tuning of transformer models in C\n\nusage: lorac COMMAND [options]\n\ncommands:\n",
            LORAC_VERSION);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
    fprintf(f, "\n'lorac COMMAND --help' shows a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("lorac %s\n", LORAC_VERSION);
        return 0;
    }
    const int refused = cli_dist_refuse(argv[1]);
    if (refused >= 0) return refused;
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "lorac: unknown command '%s'; hint: lorac --help lists the commands\n", argv[1]);
    return EXIT_USAGE;
}
