/* dataset_json.c - examples from JSONL (one object per line) and JSON arrays
 * of objects, for classification, plain text and instruction data. A JSON
 * array is parsed one element at a time so every record keeps its line. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/dataset_internal.h"

static const char *json_type_name(const cJSON *j) {
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* The first key of `names` present in obj (case ignored), or NULL. */
static const cJSON *first_key(const cJSON *obj, const char *const *names, const char **which) {
    for (; *names; names++) {
        const cJSON *j = cJSON_GetObjectItem(obj, *names);
        if (j) {
            *which = *names;
            return j;
        }
    }
    return NULL;
}

/* A string member (missing or null counts as absent: *out = NULL). Returns 0
 * when the member exists with another type. */
static int string_member(const cJSON *obj, const char *key, const char **out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return 1;
    if (!cJSON_IsString(j)) return 0;
    *out = j->valuestring;
    return 1;
}

/* A chat record: {"messages": [{"role", "content"}, ...]} or ShareGPT's
 * {"conversations": [{"from", "value"}, ...]} (human / gpt / system). */
static lorac_status add_conversation(ds_builder *b, const cJSON *obj, const char *key, int line) {
    static const char shape[] = "records look like {\"messages\": [{\"role\": \"user\", \"content\": ...}, "
                                "{\"role\": \"assistant\", \"content\": ...}]}";
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsArray(arr))
        return ds_bad_row(b, LORAC_ERR_DATA, line, "\"%s\" is %s, not a list; hint: %s", key, json_type_name(arr), shape);
    const int n = cJSON_GetArraySize(arr), sharegpt = !strcmp(key, "conversations");
    lorac_chat_msg *m = calloc((size_t)(n > 0 ? n : 1), sizeof *m);
    if (!m) return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory", b->path, line);
    lorac_status st = LORAC_OK;
    int i = 0, n_assistant = 0; /* i < n: a bad message was met (an error, or skipped with --skip-bad-rows) */
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const char *rk = "role", *ck = "content", *role, *content;
        if (sharegpt && !cJSON_GetObjectItemCaseSensitive(e, "role")) rk = "from", ck = "value";
        if (!cJSON_IsObject(e)) {
            st = ds_bad_row(b, LORAC_ERR_DATA, line, "\"%s\"[%d] is %s, not an object; hint: %s", key, i,
                            json_type_name(e), shape);
            break;
        }
        const int role_ok = string_member(e, rk, &role) && role, content_ok = string_member(e, ck, &content) && content;
        if (!role_ok || !content_ok) {
            const char *field = role_ok ? ck : rk;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, field);
            st = ds_bad_row(b, LORAC_ERR_DATA, line, "\"%s\"[%d].%s is %s, not a string; hint: %s", key, i, field,
                            v ? json_type_name(v) : "missing", shape);
            break;
        }
        if (sharegpt && !strcmp(rk, "from")) /* ShareGPT's speakers */
            role = !strcmp(role, "human") ? "user" : !strcmp(role, "gpt") ? "assistant" : role;
        m[i].role = (char *)role;
        m[i].content = (char *)content;
        n_assistant += !strcmp(role, "assistant");
        i++;
    }
    char quoted[32], why[480];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    if (i < n) {
        /* reported above */
    } else if (lorac_chat_check(NULL, m, n, quoted) != LORAC_OK) {
        snprintf(why, sizeof why, "%s", lorac_last_error()); /* ds_bad_row replaces the last error */
        st = ds_bad_row(b, LORAC_ERR_DATA, line, "%s", why);
    } else if (n_assistant == 0) {
        st = ds_bad_row(b, LORAC_ERR_DATA, line, "\"%s\" has no assistant message; hint: the loss trains on the "
                        "assistant turns, so every record needs one", key);
    } else {
        st = ds_add(b, line, "", NULL, NULL, NULL);
        if (st == LORAC_OK) st = ds_attach_chat(b, line, m, n);
    }
    free(m); /* the strings belong to cJSON */
    return st;
}

static lorac_status add_instruction(ds_builder *b, const cJSON *obj, int line) {
    const char *instruction, *input, *output;
    if (cJSON_GetObjectItemCaseSensitive(obj, "messages")) return add_conversation(b, obj, "messages", line);
    if (cJSON_GetObjectItemCaseSensitive(obj, "conversations")) return add_conversation(b, obj, "conversations", line);
    if (!string_member(obj, "instruction", &instruction) || !instruction)
        return ds_bad_row(b, LORAC_ERR_DATA, line,
                          "record has no string \"instruction\"; hint: records look like {\"instruction\": ..., "
                          "\"input\": ..., \"output\": ...} or {\"messages\": [...]}");
    if (!string_member(obj, "input", &input))
        return ds_bad_row(b, LORAC_ERR_DATA, line, "\"input\" is not a string; hint: use \"\" for no input");
    if (!string_member(obj, "output", &output) || !output)
        return ds_bad_row(b, LORAC_ERR_DATA, line,
                          "record has no string \"output\"; hint: every record needs the expected response");
    char *prompt = lorac_alpaca_prompt(instruction, input);
    size_t np = prompt ? strlen(prompt) : 0, no = strlen(output), ni = strlen(instruction);
    size_t nu = ni + (input && input[0] ? 2 + strlen(input) : 0);
    char *text = prompt ? malloc(np + no + 1) : NULL, *user = text ? malloc(nu + 1) : NULL;
    if (!user) {
        free(prompt);
        free(text);
        return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory", b->path, line);
    }
    memcpy(text, prompt, np);
    memcpy(text + np, output, no + 1);
    /* as a conversation: the instruction (and its input) from the user, the output from the assistant */
    snprintf(user, nu + 1, "%s%s%s", instruction, nu > ni ? "\n\n" : "", nu > ni ? input : "");
    const lorac_chat_msg m[2] = {{"user", user}, {"assistant", (char *)output}};
    lorac_status st = ds_add(b, line, text, NULL, prompt, output);
    if (st == LORAC_OK) st = ds_attach_chat(b, line, m, 2);
    free(prompt);
    free(text);
    free(user);
    return st;
}

/* A label value as text: strings as they are, integral numbers without a
 * fraction ("1", not "1.000000"), other numbers with full precision, booleans
 * as false/true. */
static int label_text(const cJSON *j, char *buf, size_t n, const char **out) {
    if (cJSON_IsString(j)) *out = j->valuestring;
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && fabs(v) < 1e15) snprintf(buf, n, "%.0f", v);
        else snprintf(buf, n, "%.17g", v);
        *out = buf;
    } else if (cJSON_IsBool(j)) *out = cJSON_IsTrue(j) ? "true" : "false";
    else return 0;
    return 1;
}

static lorac_status add_record(ds_builder *b, const cJSON *obj, int line, const lorac_data_opts *o, int want_label,
                               int instructions) {
    static const char *const text_names[] = {"text", "sentence", "review", "sms", "message", "content", NULL};
    static const char *const label_names[] = {"label", "class", "category", "sentiment", "target", NULL};
    if (!cJSON_IsObject(obj))
        return ds_bad_row(b, LORAC_ERR_DATA, line, "expected a JSON object, got %s; hint: each record looks like %s", json_type_name(obj),
                          instructions ? "{\"instruction\": ..., \"input\": ..., \"output\": ...} or {\"messages\": [...]}"
                                       : "{\"text\": ..., \"label\": ...}");
    if (instructions) return add_instruction(b, obj, line);

    const char *tkey = o->text_col;
    const cJSON *t = tkey ? cJSON_GetObjectItemCaseSensitive(obj, tkey) : first_key(obj, text_names, &tkey);
    if (!t)
        return ds_bad_row(b, LORAC_ERR_DATA, line, "record has no %s%s%s key; hint: use --text-col KEY",
                          o->text_col ? "'" : "text (text, sentence, review, sms, message, content)",
                          o->text_col ? o->text_col : "", o->text_col ? "'" : "");
    if (!cJSON_IsString(t))
        return ds_bad_row(b, LORAC_ERR_DATA, line,
                          "'%s' is %s, not a string; hint: the text must be a JSON string (see --text-col)", tkey,
                          json_type_name(t));
    if (!t->valuestring[0])
        return ds_bad_row(b, LORAC_ERR_DATA, line, "empty text in '%s'; hint: remove the record or pass --skip-bad-rows",
                          tkey);

    const char *label = NULL;
    char num[64];
    if (want_label) {
        const char *lkey = o->label_col;
        const cJSON *l = lkey ? cJSON_GetObjectItemCaseSensitive(obj, lkey) : first_key(obj, label_names, &lkey);
        if (!l || cJSON_IsNull(l))
            return ds_bad_row(b, LORAC_ERR_DATA, line, "record has no %s%s%s; hint: use --label-col KEY",
                              o->label_col ? "'" : "label (label, class, category, sentiment, target)",
                              o->label_col ? o->label_col : "", o->label_col ? "'" : "");
        if (!label_text(l, num, sizeof num, &label))
            return ds_bad_row(b, LORAC_ERR_DATA, line, "label '%s' is %s; hint: labels are strings or numbers", lkey,
                              json_type_name(l));
        if (!label[0])
            return ds_bad_row(b, LORAC_ERR_DATA, line,
                              "empty label in '%s'; hint: every record needs a label, or pass --skip-bad-rows", lkey);
    }
    return ds_add(b, line, t->valuestring, label, NULL, NULL);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Where cJSON stopped, as a line and column. */
static void position(const char *buf, const char *at, int *line, int *col) {
    *line = ds_line_of(buf, (size_t)(at - buf));
    const char *s = at;
    while (s > buf && s[-1] != '\n') s--;
    *col = (int)(at - s) + 1;
}

static lorac_status load_jsonl(ds_builder *b, const char *buf, size_t len, const lorac_data_opts *o, int want_label,
                               int instructions) {
    const char *p = buf, *end = buf + len;
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *q = p;
        while (q < eol && is_ws(*q)) q++;
        if (q < eol) { /* not a blank line */
            const char *stop = NULL;
            cJSON *j = cJSON_ParseWithLengthOpts(p, (size_t)(eol - p), &stop, 0);
            while (j && stop && stop < eol && is_ws(*stop)) stop++;
            lorac_status st;
            if (!j || (stop && stop < eol)) {
                int col = stop ? (int)(stop - p) + 1 : 1;
                st = ds_bad_row(b, LORAC_ERR_FORMAT, line,
                                "%s at column %d; hint: each line must be exactly one JSON object",
                                j ? "text after the JSON value" : "invalid JSON", col);
            } else {
                st = add_record(b, j, line, o, want_label, instructions);
            }
            cJSON_Delete(j);
            LORAC_TRY(st);
        }
        p = eol + 1;
    }
    return LORAC_OK;
}

static lorac_status load_array(ds_builder *b, const char *buf, size_t len, const lorac_data_opts *o, int want_label,
                               int instructions) {
    const char *p = buf, *end = buf + len;
    int line = 1, col;
    /* advance p over white space, keeping the line count */
#define SKIP_WS()                                                                                                 \
    while (p < end && is_ws(*p)) line += *p++ == '\n'
    SKIP_WS();
    if (p == end || *p != '[')
        return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: expected a JSON array '[' of records; hint: for one object per "
                                            "line name the file .jsonl",
                          b->path, line);
    p++;
    SKIP_WS();
    if (p < end && *p == ']') p++;
    else
        for (;;) {
            const char *stop = NULL;
            int rec_line = line;
            cJSON *j = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &stop, 0);
            if (!j) {
                position(buf, stop ? stop : p, &line, &col);
                return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: invalid JSON at column %d; hint: check the quoting and "
                                                    "commas near this point",
                                  b->path, line, col);
            }
            lorac_status st = add_record(b, j, rec_line, o, want_label, instructions);
            cJSON_Delete(j);
            LORAC_TRY(st);
            for (; p < stop; p++) line += *p == '\n';
            SKIP_WS();
            if (p < end && *p == ',') {
                p++;
                SKIP_WS();
                continue;
            }
            if (p < end && *p == ']') {
                p++;
                break;
            }
            position(buf, p, &line, &col);
            return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: expected ',' or ']' after a record at column %d%s", b->path,
                              line, col, p == end ? " (the file ends inside the array; is it truncated?)" : "");
        }
    SKIP_WS();
    if (p < end) {
        position(buf, p, &line, &col);
        return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: text after the end of the JSON array at column %d", b->path, line,
                          col);
    }
#undef SKIP_WS
    return LORAC_OK;
}

lorac_status ds_load_json(ds_builder *b, const char *buf, size_t len, ds_format fmt, const lorac_data_opts *o,
                          int want_label, int instructions) {
    int idx;
    const char *specs[2] = {o->text_col, o->label_col};
    for (int i = 0; i < 2; i++)
        if (specs[i] && sscanf(specs[i], "%d", &idx) == 1 && strspn(specs[i], "0123456789") == strlen(specs[i]))
            return lorac_fail(LORAC_ERR_ARG, "%s: column %s is an index, but JSON records have keys; hint: name the key",
                              b->path, specs[i]);
    /* A ".json" file that holds one object per line is read as JSONL. */
    const char *p = buf;
    while (is_ws(*p)) p++;
    if (fmt == DS_JSON && *p != '{') return load_array(b, buf, len, o, want_label, instructions);
    return load_jsonl(b, buf, len, o, want_label, instructions);
}
