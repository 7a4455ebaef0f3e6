/* generate.c - continue a prompt with a model (and an adapter, or "-" for
 * none), streaming the text as it comes, then print the timings.
 *   generate MODEL [ADAPTER_DIR|-] [PROMPT] [MAX_NEW]
 * TOKENIZER=PATH in the environment overrides the model's tokenizer. */
#include <lorac.h>
#include <stdio.h>
#include <stdlib.h>

static int on_token(int id, const char *piece, size_t len, void *user) {
    (void)id;
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0; /* non-zero would stop here */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: generate MODEL [ADAPTER_DIR|-] [PROMPT] [MAX_NEW]\n");
        return 2;
    }
    lorac_llm_opts o; /* TOKENIZER=PATH in the environment: another tokenizer than the model's */
    lorac_llm_opts_init(&o);
    o.tokenizer = getenv("TOKENIZER");
    lorac_llm *llm;
    if (lorac_llm_open(argv[1], &o, &llm) != LORAC_OK) {
        fprintf(stderr, "generate: %s\n", lorac_last_error());
        return 1;
    }
    if (argc > 2 && argv[2][0] != '-' && lorac_llm_adapter_apply(llm, argv[2]) != LORAC_OK) {
        fprintf(stderr, "generate: %s\n", lorac_last_error());
        lorac_llm_close(llm);
        return 1;
    }
    lorac_gen_params p;
    lorac_gen_params_init(&p);
    p.max_new = argc > 4 ? atoi(argv[4]) : 24;
    lorac_gen_stats st;
    const char *prompt = argc > 3 ? argv[3] : "Once upon a time";
    printf("%s", prompt);
    lorac_status s = lorac_llm_generate(llm, prompt, &p, on_token, NULL, NULL, &st);
    printf("\n");
    if (s != LORAC_OK) fprintf(stderr, "generate: %s\n", lorac_last_error());
    else
        fprintf(stderr, "prompt %d tokens %.3f s; generated %d tokens %.3f s\n", st.prompt_tokens, st.prompt_seconds,
                st.gen_tokens, st.gen_seconds);
    lorac_llm_close(llm);
    return s == LORAC_OK ? 0 : 1;
}
