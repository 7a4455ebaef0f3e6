/* test_chat.c - chat formats against transformers' apply_chat_template.
 *
 * tests/fixtures/chat/<name>.json (tests/ref/make_chat_fixtures.py) hold a
 * template's text and, per conversation, transformers' rendering, the byte
 * spans of the assistant turns and, where a tokenizer was at hand, the token
 * ids and assistant mask. Here: the family is detected from the template
 * text, every conversation is rendered and compared byte for byte, spans
 * exactly; the ids and mask with the GGUF's tokenizer (skipped with a note
 * when the model cache is absent). Then the families no fixture covers
 * (mistral, llama2, alpaca) against their reference templates' output
 * written out by hand, template sources, detection errors and bad
 * conversations. */
#include <stdlib.h>
#include <string.h>

#include "io/chat.h"
#include "io/dataset.h"
#include "testutil.h"
#include "train/batch.h"

static lorac_chat_msg *msgs_of(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    lorac_chat_msg *m = calloc((size_t)*n + 1, sizeof *m);
    for (int i = 0; i < *n; i++) {
        const cJSON *e = cJSON_GetArrayItem(arr, i);
        m[i].role = cJSON_GetObjectItem(e, "role")->valuestring;
        m[i].content = cJSON_GetObjectItem(e, "content")->valuestring;
    }
    return m;
}

static lorac_tokenizer *fixture_tokenizer(const char *src) {
    lorac_tokenizer *tok = NULL;
    if (!strncmp(src, "models/", 7)) {
        lorac_gguf *g;
        if (lorac_gguf_open_metadata(test_cache_path(src), &g) != LORAC_OK) return NULL;
        if (lorac_tokenizer_from_gguf(g, &tok) != LORAC_OK) tok = NULL;
        lorac_gguf_close(g);
    } else if (lorac_tokenizer_load(test_src_path(src), &tok) != LORAC_OK) {
        tok = NULL;
    }
    return tok;
}

static void check_fixture(const char *name, lorac_chat_family want, const char *want_system) {
    char rel[128];
    snprintf(rel, sizeof rel, "tests/fixtures/chat/%s.json", name);
    cJSON *j = test_read_json(test_src_path(rel));
    CHECK(j != NULL, "%s: fixture unreadable", rel);
    if (!j) return;
    lorac_chat_format f;
    CHECK_OK(lorac_chat_detect(cJSON_GetObjectItem(j, "template")->valuestring, rel, &f));
    CHECK(f.family == want, "%s: detected %s", name, lorac_chat_family_name(f.family));
    CHECK(!strcmp(f.default_system, want_system), "%s: default system '%s'", name, f.default_system);
    snprintf(f.bos_token, sizeof f.bos_token, "%s", cJSON_GetObjectItem(j, "bos_token")->valuestring);
    snprintf(f.eos_token, sizeof f.eos_token, "%s", cJSON_GetObjectItem(j, "eos_token")->valuestring);
    const cJSON *src = cJSON_GetObjectItem(j, "tokenizer");
    lorac_tokenizer *tok = cJSON_IsString(src) ? fixture_tokenizer(src->valuestring) : NULL;
    if (cJSON_IsString(src) && !tok) printf("note: %s: tokenizer %s absent, ids not checked\n", name, src->valuestring);
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cases")) {
        const char *cname = cJSON_GetObjectItem(c, "name")->valuestring;
        int n, gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt"));
        lorac_chat_msg *m = msgs_of(cJSON_GetObjectItem(c, "messages"), &n);
        lorac_chat_text t;
        CHECK_OK(lorac_chat_render(&f, m, n, gen, &t));
        const char *want_text = cJSON_GetObjectItem(c, "text")->valuestring;
        CHECK(t.text && !strcmp(t.text, want_text), "%s/%s: rendered\n%s\nwant\n%s", name, cname, t.text, want_text);
        const cJSON *spans = cJSON_GetObjectItem(c, "spans");
        CHECK(t.n_span == cJSON_GetArraySize(spans), "%s/%s: %d spans", name, cname, t.n_span);
        for (int s = 0; s < t.n_span && s < cJSON_GetArraySize(spans); s++) {
            const cJSON *sp = cJSON_GetArrayItem(spans, s);
            CHECK(t.span[s][0] == (size_t)cJSON_GetArrayItem(sp, 0)->valueint &&
                      t.span[s][1] == (size_t)cJSON_GetArrayItem(sp, 1)->valueint,
                  "%s/%s: span %d is [%zu, %zu)", name, cname, s, t.span[s][0], t.span[s][1]);
        }
        const cJSON *ids = cJSON_GetObjectItem(c, "ids"), *mask = cJSON_GetObjectItem(c, "mask");
        if (tok && ids) {
            int *got, ng;
            uint8_t *gm;
            CHECK_OK(lorac_chat_encode(tok, &t, &got, &gm, &ng));
            CHECK(ng == cJSON_GetArraySize(ids), "%s/%s: %d ids, want %d", name, cname, ng, cJSON_GetArraySize(ids));
            int bad_id = -1, bad_mask = -1;
            for (int i = 0; i < ng && i < cJSON_GetArraySize(ids); i++) {
                if (bad_id < 0 && got[i] != cJSON_GetArrayItem(ids, i)->valueint) bad_id = i;
                if (bad_mask < 0 && gm[i] != cJSON_GetArrayItem(mask, i)->valueint) bad_mask = i;
            }
            CHECK(bad_id < 0, "%s/%s: id %d differs", name, cname, bad_id);
            CHECK(bad_mask < 0, "%s/%s: mask %d differs", name, cname, bad_mask);
            free(got);
            free(gm);
        }
        lorac_chat_text_free(&t);
        free(m);
        n_cases++;
    }
    CHECK(n_cases >= 6, "%s: %d cases", name, n_cases);
    lorac_tokenizer_free(tok);
    cJSON_Delete(j);
}

/* Render with a named family and fixed tokens; compare text and spans. */
static void check_named(lorac_chat_family fam, int bos, const lorac_chat_msg *m, int n, int gen, const char *want,
                        int n_span) {
    lorac_chat_format f;
    lorac_chat_format_init(&f, fam);
    if (bos >= 0) f.bos = bos;
    strcpy(f.bos_token, "<s>");
    strcpy(f.eos_token, "</s>");
    lorac_chat_text t;
    CHECK_OK(lorac_chat_render(&f, m, n, gen, &t));
    CHECK(t.text && !strcmp(t.text, want), "%s: rendered\n%s\nwant\n%s", lorac_chat_family_name(fam), t.text, want);
    CHECK(t.n_span == n_span, "%s: %d spans", lorac_chat_family_name(fam), t.n_span);
    lorac_chat_text_free(&t);
}

static void test_named_families(void) {
    lorac_chat_msg conv[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"},
                             {"user", "Bye"},         {"assistant", " Later "}};
    /* Llama 2 chat's template (meta-llama/Llama-2-7b-chat-hf), contents stripped */
    check_named(LORAC_CHAT_LLAMA2, 1, conv, 5, 0,
                "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST] Later </s>", 2);
    /* Mistral-7B-Instruct-v0.2's, the system message before the first user message */
    check_named(LORAC_CHAT_MISTRAL, 1, conv, 5, 0, "<s>[INST] Be brief.\n\nHi [/INST]Hello</s>[INST] Bye [/INST] Later </s>",
                2);
    /* alpaca: one turn is exactly the ch. 7 prompt + response + EOS */
    char *p = lorac_alpaca_prompt("Name a color.", NULL), want[512];
    snprintf(want, sizeof want, "%sRed.</s>", p);
    lorac_chat_msg one[] = {{"user", "Name a color."}, {"assistant", "Red."}};
    check_named(LORAC_CHAT_ALPACA, 0, one, 2, 0, want, 1);
    snprintf(want, sizeof want, "%s", p);
    check_named(LORAC_CHAT_ALPACA, 0, one, 1, 1, want, 0);
    free(p);
    check_named(LORAC_CHAT_ALPACA, 0, conv, 5, 0,
                "Be brief.\n\n### Instruction:\nHi\n\n### Response:\nHello</s>\n\n### Instruction:\nBye\n\n### "
                "Response:\n Later </s>",
                2);
}

static void expect_fail(lorac_status st, lorac_status want, const char *text, const char *what) {
    CHECK(st == want, "%s: status %d", what, st);
    CHECK(strstr(lorac_last_error(), text) != NULL, "%s: error '%s' lacks '%s'", what, lorac_last_error(), text);
}

static void test_errors(void) {
    lorac_chat_format f;
    expect_fail(lorac_chat_detect("{{ messages }}", "x.gguf: tokenizer.chat_template", &f), LORAC_ERR_UNSUPPORTED,
                "x.gguf: tokenizer.chat_template: a chat template of no family lorac knows", "unknown template");
    expect_fail(lorac_chat_detect("{{ messages }}", "t", &f), LORAC_ERR_UNSUPPORTED, "--chat-format", "hint");
    expect_fail(lorac_chat_detect("<|start_header_id|><|end_header_id|>Cutting Knowledge Date", "t", &f),
                LORAC_ERR_UNSUPPORTED, "Llama 3.1+", "llama 3.1");
    CHECK_OK(lorac_chat_detect("gemma", "t", &f)); /* a format's name as the template */
    CHECK(f.family == LORAC_CHAT_GEMMA, "named template");
    lorac_chat_family fam;
    expect_fail(lorac_chat_family_parse("vicuna", &fam), LORAC_ERR_ARG, "one of chatml", "bad name");

    lorac_chat_text t;
    lorac_chat_format_init(&f, LORAC_CHAT_CHATML);
    lorac_chat_msg bot[] = {{"user", "a"}, {"bot", "b"}};
    expect_fail(lorac_chat_render(&f, bot, 2, 0, &t), LORAC_ERR_DATA, "messages[1]: role \"bot\"", "unknown role");
    lorac_chat_msg late[] = {{"user", "a"}, {"system", "b"}};
    expect_fail(lorac_chat_render(&f, late, 2, 0, &t), LORAC_ERR_DATA, "messages[1]: a system message after", "late sys");
    expect_fail(lorac_chat_render(&f, late, 0, 0, &t), LORAC_ERR_DATA, "messages is empty", "empty");
    lorac_chat_format_init(&f, LORAC_CHAT_GEMMA);
    lorac_chat_msg two[] = {{"user", "a"}, {"user", "b"}};
    expect_fail(lorac_chat_render(&f, two, 2, 0, &t), LORAC_ERR_DATA, "alternating", "gemma alternation");
}

/* tokenizer_config.json's chat_template (string and list) and chat_template.jinja. */
static void test_sources(void) {
    char dir[512], path[600], where[700], *tpl;
    snprintf(dir, sizeof dir, "%s", test_tmpdir());
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, {\"name\": \"default\", \"template\": "
          "\"<|im_start|>{{ m }}\"}]}", fp);
    fclose(fp);
    CHECK_OK(lorac_chat_template_read(path, NULL, &tpl, where, sizeof where)); /* a file: its directory */
    CHECK(tpl && !strcmp(tpl, "<|im_start|>{{ m }}"), "list template: %s", tpl ? tpl : "(none)");
    CHECK(strstr(where, "tokenizer_config.json: chat_template") != NULL, "where: %s", where);
    free(tpl);
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    fp = fopen(path, "w");
    fputs("<start_of_turn>", fp);
    fclose(fp);
    CHECK_OK(lorac_chat_template_read(dir, NULL, &tpl, where, sizeof where)); /* .jinja first */
    CHECK(tpl && !strcmp(tpl, "<start_of_turn>"), "jinja template");
    free(tpl);
    CHECK_OK(lorac_chat_template_read(test_src_path("tests/fixtures/data"), NULL, &tpl, where, sizeof where));
    CHECK(tpl == NULL, "no template");
}

/* Instruction data end to end: tests/fixtures/data/chat.jsonl (messages,
 * ShareGPT and an Alpaca record) tokenized for SmolLM2 in its template; the
 * tokens the loss trains on decode to exactly the assistant messages, each
 * with its <|im_end|>. With alpaca the Alpaca record keeps lorac's old
 * layout: BOS? + prompt + response + EOS, the mask from the response on. */
static void test_dataset_masks(void) {
    const char *path = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    lorac_gguf *g;
    if (lorac_gguf_open_metadata(path, &g) != LORAC_OK) {
        printf("note: %s absent, dataset masks not checked\n", path);
        return;
    }
    lorac_tokenizer *tok;
    char *tpl, where[600];
    lorac_chat_format f;
    CHECK_OK(lorac_tokenizer_from_gguf(g, &tok));
    CHECK_OK(lorac_chat_template_read(NULL, g, &tpl, where, sizeof where));
    CHECK_OK(lorac_chat_detect(tpl, where, &f));
    lorac_chat_set_tokens(&f, tok);
    free(tpl);
    lorac_gguf_close(g);
    int end = lorac_tokenizer_find(tok, "<|im_end|>");
    CHECK(lorac_chat_end_of_turn(&f, tok) == end, "end of turn");
    lorac_dataset d;
    CHECK_OK(lorac_dataset_load_instructions(test_src_path("tests/fixtures/data/chat.jsonl"), &d));
    CHECK(d.n == 6 && d.ex[2].n_msgs == 4 && !strcmp(d.ex[2].msgs[1].role, "assistant"), "ShareGPT record");
    CHECK(d.ex[3].n_msgs == 2 && !strcmp(d.ex[3].msgs[0].content, "Rewrite the sentence in passive voice.\n\nThe cat "
                                         "chased the mouse."), "Alpaca record as a conversation");
    lorac_tokenized t;
    CHECK_OK(lorac_tokenize_dataset(tok, &d, LORAC_TASK_INSTRUCT, 256, &f, &t));
    for (int i = 0; i < d.n && t.n == d.n; i++) {
        char want[512] = "", *got;
        size_t len;
        for (int k = 0; k < d.ex[i].n_msgs; k++)
            if (!strcmp(d.ex[i].msgs[k].role, "assistant"))
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s<|im_end|>", d.ex[i].msgs[k].content);
        int ids[256], n = 0;
        for (int j = 0; j < t.len[i]; j++)
            if (t.loss_mask[i][j]) ids[n++] = t.ids[i][j];
        CHECK_OK(lorac_tokenizer_decode(tok, ids, n, 0, &got, &len));
        CHECK(!strcmp(got, want), "example %d trains on '%s', want '%s'", i, got, want);
        CHECK(lorac_example_terms(&t, i, LORAC_TASK_INSTRUCT) == n - !!t.loss_mask[i][0], "terms %d", i);
        free(got);
    }
    lorac_tokenized_free(&t);
    lorac_chat_format alpaca;
    lorac_chat_format_init(&alpaca, LORAC_CHAT_ALPACA);
    lorac_chat_set_tokens(&alpaca, tok);
    CHECK_OK(lorac_tokenize_dataset(tok, &d, LORAC_TASK_INSTRUCT, 256, &alpaca, &t));
    int *p, np;
    CHECK_OK(lorac_tokenizer_encode(tok, d.ex[3].prompt, strlen(d.ex[3].prompt), 0, &p, &np));
    int first = 0;
    while (first < t.len[3] && !t.loss_mask[3][first]) first++;
    CHECK(first == np && t.ids[3][t.len[3] - 1] == lorac_tokenizer_eos(tok) && !memcmp(t.ids[3], p, sizeof(int) * np),
          "alpaca record: prompt of %d tokens, mask from %d", np, first);
    free(p);
    lorac_tokenized_free(&t);
    lorac_dataset_free(&d);
    lorac_tokenizer_free(tok);
}

/* Gemma's turns end with <end_of_turn>, which is not its EOS: generation
 * stops at either. */
static void test_gemma_end_of_turn(void) {
    lorac_gguf *g;
    if (lorac_gguf_open_metadata(test_cache_path("models/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"), &g) != LORAC_OK) return;
    lorac_tokenizer *tok;
    CHECK_OK(lorac_tokenizer_from_gguf(g, &tok));
    lorac_gguf_close(g);
    lorac_chat_format f;
    lorac_chat_format_init(&f, LORAC_CHAT_GEMMA);
    int eot = lorac_chat_end_of_turn(&f, tok);
    CHECK(eot == lorac_tokenizer_find(tok, "<end_of_turn>") && eot >= 0 && eot != lorac_tokenizer_eos(tok),
          "gemma end of turn %d", eot);
    lorac_tokenizer_free(tok);
}

int main(void) {
    check_fixture("smollm2", LORAC_CHAT_CHATML, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
    check_fixture("qwen25", LORAC_CHAT_CHATML, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.");
    check_fixture("gemma3", LORAC_CHAT_GEMMA, "");
    check_fixture("llama3", LORAC_CHAT_LLAMA3, "");
    check_fixture("phi3", LORAC_CHAT_PHI3, "");
    test_named_families();
    test_errors();
    test_sources();
    test_dataset_masks();
    test_gemma_end_of_turn();
    return test_summary("test_chat");
}
