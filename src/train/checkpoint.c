/* checkpoint.c - saving, finding and loading resumable training checkpoints
 * (see checkpoint.h for the layout and the guarantees). */
#include "train/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "io/safetensors.h"
#include "lora/lora.h"

#define PATH_MAX_ 4096

/* ---- small helpers ------------------------------------------------------- */

void lorac_ckpt_state_free(lorac_ckpt_state *s) {
    free(s->losses);
    s->losses = NULL;
    s->cap_losses = 0;
}

lorac_status lorac_ckpt_push_loss(lorac_ckpt_state *s, int n_before, double loss) {
    if (n_before + 1 > s->cap_losses) {
        int cap = s->cap_losses ? 2 * s->cap_losses : 256;
        while (cap < n_before + 1) cap *= 2;
        double *p = realloc(s->losses, (size_t)cap * sizeof *p);
        if (!p) return lorac_fail(LORAC_ERR_NOMEM, "out of memory keeping the loss history");
        s->losses = p;
        s->cap_losses = cap;
    }
    s->losses[n_before] = loss;
    return LORAC_OK;
}

lorac_status lorac_ckpt_config_add(lorac_ckpt_config *c, const char *key, const char *fmt, ...) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 32;
        char (*k)[48] = realloc(c->key, (size_t)cap * sizeof *k);
        if (k) c->key = k;
        char **v = k ? realloc(c->val, (size_t)cap * sizeof *v) : NULL;
        if (!k || !v) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
        c->val = v;
        c->cap = cap;
    }
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    snprintf(c->key[c->n], sizeof c->key[0], "%s", key);
    c->val[c->n] = strdup(buf);
    if (!c->val[c->n]) return lorac_fail(LORAC_ERR_NOMEM, "out of memory");
    c->n++;
    return LORAC_OK;
}

void lorac_ckpt_config_free(lorac_ckpt_config *c) {
    for (int i = 0; i < c->n; i++) free(c->val[i]);
    free(c->key);
    free(c->val);
    memset(c, 0, sizeof *c);
}

uint64_t lorac_hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* fsync a directory so that renames inside it survive a crash. */
static lorac_status fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", dir, strerror(errno));
    int rc = fsync(fd), err = errno;
    close(fd);
    /* some file systems refuse fsync on directories: that is not an error */
    if (rc != 0 && err != EINVAL && err != EROFS && err != ENOTSUP)
        return lorac_fail(LORAC_ERR_IO, "%s: fsync failed: %s", dir, strerror(err));
    return LORAC_OK;
}

/* rm -rf for a checkpoint directory (plain files and directories). Best effort. */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d) {
            struct dirent *e;
            while ((e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
                char sub[PATH_MAX_];
                if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub) remove_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* "step-000123" -> 123; -1 for anything else (".tmp", ".old", other names). */
static long step_of(const char *name) {
    if (strncmp(name, "step-", 5) != 0 || !name[5]) return -1;
    long v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000000L) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int has_state(const char *dir) {
    char p[PATH_MAX_];
    return lorac_file_exists(lorac_path_join(p, sizeof p, dir, LORAC_CKPT_STATE));
}

/* ROOT/latest -> "step-N" (empty when missing or not naming a complete checkpoint). */
static void read_latest(const char *root, char *name, size_t n) {
    char p[PATH_MAX_], *txt = NULL;
    name[0] = 0;
    if (lorac_read_file(lorac_path_join(p, sizeof p, root, LORAC_CKPT_LATEST), 4096, &txt, NULL) != LORAC_OK) {
        lorac_clear_error();
        return;
    }
    size_t len = strcspn(txt, "\r\n");
    txt[len] = 0;
    char dir[PATH_MAX_];
    if (len && len < n && !strchr(txt, '/') && step_of(txt) >= 0 && has_state(lorac_path_join(dir, sizeof dir, root, txt)))
        memcpy(name, txt, len + 1);
    free(txt);
}

/* The highest complete step-N under root ("" if none). */
static void highest_complete(const char *root, char *name, size_t n) {
    name[0] = 0;
    DIR *d = opendir(root);
    if (!d) return;
    long best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s = step_of(e->d_name);
        char p[PATH_MAX_];
        if (s > best && has_state(lorac_path_join(p, sizeof p, root, e->d_name)) && strlen(e->d_name) < n) {
            best = s;
            strcpy(name, e->d_name);
        }
    }
    closedir(d);
}

/* ---- saving -------------------------------------------------------------- */

typedef struct {
    lorac_st_entry *e;
    int n, cap;
    lorac_status st;
} entry_list;

static void add_weight(lorac_weight *w, void *ctx) {
    entry_list *l = ctx;
    if (l->n >= l->cap) return;
    lorac_st_entry *e = &l->e[l->n++];
    e->name = w->name;
    e->data = w->data;
    e->ndim = w->ndim;
    e->shape[0] = w->shape[0];
    e->shape[1] = w->shape[1];
    e->dtype = LORAC_F32;
}

static void count_weight(lorac_weight *w, void *ctx) {
    (void)w;
    ++*(int *)ctx;
}

static lorac_status save_trainable(lorac_model *m, const char *path) {
    int n = 0;
    lorac_for_each_trainable(m, count_weight, &n);
    entry_list l = {0};
    l.cap = n;
    LORAC_TRY(lorac_alloc((void **)&l.e, (size_t)(n ? n : 1), sizeof *l.e, "checkpoint entries"));
    lorac_for_each_trainable(m, add_weight, &l);
    const char *md[] = {"format", "pt", "created_by", "lorac " LORAC_VERSION, NULL};
    lorac_status st = lorac_st_write(path, l.e, l.n, md);
    free(l.e);
    return st;
}

static cJSON *rng_json(const lorac_rng *r) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < 4; i++) {
        char h[24];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)r->s[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(h));
    }
    return a;
}

static cJSON *state_json(const lorac_ckpt_state *s, const lorac_ckpt_config *cfg) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "lorac-checkpoint");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "created_by", "lorac " LORAC_VERSION);
    cJSON_AddNumberToObject(j, "step", s->step);
    cJSON_AddNumberToObject(j, "epoch", s->epoch);
    cJSON_AddNumberToObject(j, "next_batch", s->next_batch);
    cJSON_AddNumberToObject(j, "total_steps", s->total_steps);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "data_epoch_start", rng_json(&s->data_rng));
    cJSON_AddItemToObject(r, "dropout", rng_json(&s->dropout_rng));
    cJSON_AddItemToObject(j, "rng", r);
    cJSON_AddNumberToObject(j, "epoch_loss", s->epoch_loss); /* cJSON prints doubles so that they read back exactly */
    cJSON_AddNumberToObject(j, "epoch_steps", s->epoch_steps);
    cJSON_AddNumberToObject(j, "tokens", (double)s->tokens);
    cJSON_AddNumberToObject(j, "padded_tokens", (double)s->padded_tokens);
    cJSON_AddNumberToObject(j, "train_seconds", s->train_seconds);
    cJSON_AddNumberToObject(j, "eval_seconds", s->eval_seconds);
    if (s->have_val) {
        cJSON *v = cJSON_CreateObject();
        cJSON_AddNumberToObject(v, "loss", s->val_loss);
        cJSON_AddNumberToObject(v, "acc", s->val_acc);
        cJSON_AddItemToObject(j, "last_eval", v);
    }
    cJSON *c = cJSON_CreateObject();
    for (int i = 0; i < cfg->n; i++) cJSON_AddStringToObject(c, cfg->key[i], cfg->val[i]);
    cJSON_AddItemToObject(j, "config", c);
    cJSON_AddItemToObject(j, "losses", s->losses && s->step > 0 ? cJSON_CreateDoubleArray(s->losses, s->step)
                                                                 : cJSON_CreateArray());
    return j;
}

/* Keep the newest `keep` complete checkpoints numbered <= step (the one just
 * written among them); remove leftovers of interrupted saves. Checkpoints
 * numbered above `step` (from a run resumed at an earlier one) are left:
 * this run replaces them as it gets there. */
static void prune(const char *root, int keep, int step) {
    DIR *d = opendir(root);
    if (!d) return;
    long *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    char p[PATH_MAX_];
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (!strncmp(e->d_name, "step-", 5) && len > 4 &&
            (!strcmp(e->d_name + len - 4, ".tmp") || !strcmp(e->d_name + len - 4, ".old"))) {
            remove_tree(lorac_path_join(p, sizeof p, root, e->d_name));
            continue;
        }
        if (!strncmp(e->d_name, LORAC_CKPT_LATEST ".tmp.", sizeof LORAC_CKPT_LATEST + 4)) { /* a killed update of latest */
            unlink(lorac_path_join(p, sizeof p, root, e->d_name));
            continue;
        }
        long s = step_of(e->d_name);
        if (s < 0 || s > step) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            long *ns = realloc(steps, (size_t)cap * sizeof *ns);
            if (!ns) break;
            steps = ns;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (keep > 0) {
        for (int i = 1; i < n; i++) /* descending */
            for (int k = i; k > 0 && steps[k] > steps[k - 1]; k--) {
                long t = steps[k];
                steps[k] = steps[k - 1];
                steps[k - 1] = t;
            }
        for (int i = keep; i < n; i++) {
            char name[48];
            snprintf(name, sizeof name, "step-%06ld", steps[i]);
            remove_tree(lorac_path_join(p, sizeof p, root, name));
        }
    }
    free(steps);
}

static lorac_status write_state(const char *path, const lorac_ckpt_state *s, const lorac_ckpt_config *cfg) {
    cJSON *j = state_json(s, cfg);
    char *txt = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!txt) return lorac_fail(LORAC_ERR_NOMEM, "out of memory writing %s", path);
    lorac_status st = lorac_write_atomic(path, txt, strlen(txt));
    free(txt);
    return st;
}

lorac_status lorac_ckpt_save(const char *root, int keep, lorac_model *m, const lorac_optim *opt,
                             const lorac_ckpt_state *s, const lorac_ckpt_config *cfg, lorac_ckpt_extra_fn extra,
                             void *extra_ctx, char *saved, size_t n) {
    char name[48], final[PATH_MAX_], tmp[PATH_MAX_ + 8], old[PATH_MAX_ + 8], p[PATH_MAX_], prev[64];
    snprintf(name, sizeof name, "step-%06d", s->step);
    if (strlen(root) + strlen(name) + 16 >= sizeof final)
        return lorac_fail(LORAC_ERR_ARG, "%s: checkpoint path too long", root);
    lorac_path_join(final, sizeof final, root, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", final);
    snprintf(old, sizeof old, "%s.old", final);
    prev[0] = 0;
    if (is_dir(root)) {
        read_latest(root, prev, sizeof prev);
        if (!prev[0]) highest_complete(root, prev, sizeof prev);
    }

    int made_tmp = 0, moved_old = 0;
    lorac_status st = lorac_mkdirs(root);
    if (st == LORAC_OK) {
        remove_tree(tmp); /* a leftover of a killed save */
        if (mkdir(tmp, 0755) != 0)
            st = lorac_fail(LORAC_ERR_IO, "%s: cannot create directory: %s", tmp, strerror(errno));
        else
            made_tmp = 1;
    }
    if (st == LORAC_OK) st = save_trainable(m, lorac_path_join(p, sizeof p, tmp, "trainable.safetensors"));
    if (st == LORAC_OK) st = lorac_optim_save(opt, lorac_path_join(p, sizeof p, tmp, "optimizer.safetensors"));
    if (st == LORAC_OK && extra) st = extra(tmp, extra_ctx);
    if (st == LORAC_OK) st = write_state(lorac_path_join(p, sizeof p, tmp, LORAC_CKPT_STATE), s, cfg); /* last */
    if (st == LORAC_OK) st = fsync_dir(tmp);
    if (st == LORAC_OK && is_dir(final)) { /* this step was saved before (a run resumed from an earlier checkpoint) */
        remove_tree(old);
        if (rename(final, old) != 0)
            st = lorac_fail(LORAC_ERR_IO, "%s: cannot rename: %s", final, strerror(errno));
        else
            moved_old = 1;
    }
    if (st == LORAC_OK) {
        if (rename(tmp, final) != 0) {
            st = lorac_fail(LORAC_ERR_IO, "%s: cannot rename to %s: %s", tmp, name, strerror(errno));
            if (moved_old) rename(old, final);
        } else {
            made_tmp = 0;
        }
    }
    if (st == LORAC_OK) st = fsync_dir(root);
    if (st == LORAC_OK) {
        char line[64];
        snprintf(line, sizeof line, "%s\n", name);
        st = lorac_write_atomic(lorac_path_join(p, sizeof p, root, LORAC_CKPT_LATEST), line, strlen(line));
    }
    if (st == LORAC_OK) st = fsync_dir(root);
    if (made_tmp) remove_tree(tmp);
    if (st != LORAC_OK) {
        char why[1536];
        snprintf(why, sizeof why, "%s", lorac_last_error());
        char *dup = strstr(why, "; the previous file, if any, is untouched"); /* said below, for the whole checkpoint */
        if (dup) *dup = 0;
        if (prev[0])
            return lorac_fail(st, "checkpoint at step %d not saved: %s; the previous checkpoint %s/%s is intact", s->step,
                              why, root, prev);
        return lorac_fail(st, "checkpoint at step %d not saved: %s (no earlier checkpoint in %s)", s->step, why, root);
    }
    remove_tree(old);
    prune(root, keep, s->step);
    if (saved) snprintf(saved, n, "%s", final);
    return LORAC_OK;
}

/* ---- finding ------------------------------------------------------------- */

lorac_status lorac_ckpt_resolve(const char *path, char *out, size_t n) {
    char root[PATH_MAX_], name[64];
    if (!is_dir(path)) return lorac_fail(LORAC_ERR_IO, "--resume %s: no such directory", path);
    if (has_state(path)) {
        snprintf(out, n, "%s", path);
        return LORAC_OK;
    }
    lorac_path_join(root, sizeof root, path, "checkpoints");
    if (!is_dir(root)) snprintf(root, sizeof root, "%s", path);
    read_latest(root, name, sizeof name);
    if (!name[0]) highest_complete(root, name, sizeof name);
    if (!name[0])
        return lorac_fail(LORAC_ERR_IO, "--resume %s: no complete checkpoint there; hint: pass the --out of a run trained "
                          "with --save-every (or interrupted with Ctrl-C), or one of its checkpoints/step-N", path);
    char full[PATH_MAX_];
    lorac_path_join(full, sizeof full, root, name);
    if (strlen(full) >= n) return lorac_fail(LORAC_ERR_ARG, "%s: path too long", full);
    snprintf(out, n, "%s", full);
    return LORAC_OK;
}

int lorac_ckpt_run_dir(const char *ckpt, char *out, size_t n) {
    char buf[PATH_MAX_];
    size_t len = strlen(ckpt);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, ckpt, len + 1);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) return 0;
    *slash = 0; /* buf = .../RUN/checkpoints */
    char *s2 = strrchr(buf, '/');
    const char *base = s2 ? s2 + 1 : buf;
    if (strcmp(base, "checkpoints") != 0) return 0;
    if (!s2) snprintf(out, n, ".");
    else if (s2 == buf) snprintf(out, n, "/");
    else {
        *s2 = 0;
        snprintf(out, n, "%s", buf);
    }
    return 1;
}

int lorac_ckpt_exists(const char *root) {
    char p[PATH_MAX_], name[64];
    if (!is_dir(root)) return 0;
    if (lorac_file_exists(lorac_path_join(p, sizeof p, root, LORAC_CKPT_LATEST))) return 1;
    highest_complete(root, name, sizeof name);
    return name[0] != 0;
}

lorac_status lorac_ckpt_clear(const char *root) {
    DIR *d = opendir(root);
    if (!d) return LORAC_OK;
    struct dirent *e;
    char p[PATH_MAX_];
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "step-", 5)) remove_tree(lorac_path_join(p, sizeof p, root, e->d_name));
    closedir(d);
    lorac_path_join(p, sizeof p, root, LORAC_CKPT_LATEST);
    if (unlink(p) != 0 && errno != ENOENT) return lorac_fail(LORAC_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
    return LORAC_OK;
}

/* ---- loading ------------------------------------------------------------- */

static int get_int(const cJSON *j, const char *k, int *v) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(x)) return 0;
    *v = (int)x->valuedouble;
    return 1;
}

static double get_num(const cJSON *j, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static int get_rng(const cJSON *j, const char *k, lorac_rng *r) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4) return 0;
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(e)) return 0;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(e->valuestring, &end, 16);
        if (errno || *end || end == e->valuestring) return 0;
        r->s[i] = (uint64_t)v;
    }
    return 1;
}

static lorac_status check_config(const char *dir, const cJSON *c, const lorac_ckpt_config *cfg) {
    if (!cJSON_IsObject(c)) return lorac_fail(LORAC_ERR_FORMAT, "%s/" LORAC_CKPT_STATE ": no \"config\" object", dir);
    for (int i = 0; i < cfg->n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, cfg->key[i]);
        if (!cJSON_IsString(v))
            return lorac_fail(LORAC_ERR_ARG, "--resume %s: the checkpoint does not record %s (this run: %s); hint: resume "
                              "with the options of the interrupted run", dir, cfg->key[i], cfg->val[i]);
        if (strcmp(v->valuestring, cfg->val[i]) != 0)
            return lorac_fail(LORAC_ERR_ARG, "--resume %s: %s differs: the checkpoint has %s, this run %s; hint: resume "
                              "with the options of the interrupted run", dir, cfg->key[i], v->valuestring, cfg->val[i]);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, c) {
        int found = 0;
        for (int i = 0; i < cfg->n && !found; i++) found = !strcmp(cfg->key[i], e->string);
        if (!found)
            return lorac_fail(LORAC_ERR_ARG, "--resume %s: the checkpoint has %s %s, this run none; hint: resume with the "
                              "options of the interrupted run", dir, e->string,
                              cJSON_IsString(e) ? e->valuestring : "(set)");
    }
    return LORAC_OK;
}

typedef struct {
    const lorac_st *st;
    const char *path;
    lorac_status s;
} restore_ctx;

static void restore_weight(lorac_weight *w, void *ctx) {
    restore_ctx *r = ctx;
    if (r->s != LORAC_OK) return;
    const lorac_tensor_desc *t = lorac_st_find(r->st, w->name);
    if (!t) {
        r->s = lorac_fail(LORAC_ERR_FORMAT, "%s: no tensor '%s'; hint: the checkpoint is from another model or method",
                          r->path, w->name);
        return;
    }
    if (t->numel != (int64_t)w->n) {
        r->s = lorac_fail(LORAC_ERR_SHAPE, "%s: tensor '%s' has %lld values, the model %zu", r->path, w->name,
                          (long long)t->numel, w->n);
        return;
    }
    r->s = lorac_to_f32(w->data, t->data, t->dtype, (int64_t)w->n);
}

lorac_status lorac_ckpt_load(const char *dir, const lorac_ckpt_config *cfg, lorac_model *m, lorac_optim *opt,
                             lorac_ckpt_state *s) {
    char path[PATH_MAX_], *txt;
    memset(s, 0, sizeof *s);
    lorac_path_join(path, sizeof path, dir, LORAC_CKPT_STATE);
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 30, &txt, NULL));
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    lorac_status st = LORAC_OK;
#define FAIL(...) do { st = lorac_fail(LORAC_ERR_FORMAT, __VA_ARGS__); goto done; } while (0)
    if (!cJSON_IsObject(j)) FAIL("%s: not a JSON object", path);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(j, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "lorac-checkpoint"))
        FAIL("%s: not a lorac checkpoint (\"format\" is not \"lorac-checkpoint\")", path);
    int version = 0;
    if (!get_int(j, "version", &version) || version != 1)
        FAIL("%s: checkpoint version %d; hint: this lorac reads version 1", path, version);
    st = check_config(dir, cJSON_GetObjectItemCaseSensitive(j, "config"), cfg);
    if (st != LORAC_OK) goto done;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "rng");
    if (!get_int(j, "step", &s->step) || !get_int(j, "epoch", &s->epoch) || !get_int(j, "next_batch", &s->next_batch) ||
        !get_int(j, "total_steps", &s->total_steps) || !get_int(j, "epoch_steps", &s->epoch_steps) ||
        !get_rng(r, "data_epoch_start", &s->data_rng) || !get_rng(r, "dropout", &s->dropout_rng) || s->step < 0 ||
        s->epoch < 1 || s->next_batch < 0)
        FAIL("%s: step, epoch, next_batch, total_steps, epoch_steps or rng missing or invalid", path);
    s->epoch_loss = get_num(j, "epoch_loss");
    s->tokens = (int64_t)get_num(j, "tokens");
    s->padded_tokens = (int64_t)get_num(j, "padded_tokens");
    s->train_seconds = get_num(j, "train_seconds");
    s->eval_seconds = get_num(j, "eval_seconds");
    if (!isfinite(s->epoch_loss) || !isfinite(s->train_seconds) || !isfinite(s->eval_seconds))
        FAIL("%s: epoch_loss, train_seconds or eval_seconds missing", path);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "last_eval");
    if (cJSON_IsObject(v)) {
        s->have_val = 1;
        s->val_loss = get_num(v, "loss");
        s->val_acc = get_num(v, "acc");
    }
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "losses"), *e;
    if (cJSON_IsArray(l)) {
        int i = 0;
        cJSON_ArrayForEach(e, l) {
            if (i >= s->step) break;
            st = lorac_ckpt_push_loss(s, i++, cJSON_IsNumber(e) ? e->valuedouble : NAN);
            if (st != LORAC_OK) goto done;
        }
        for (; i < s->step; i++)
            if ((st = lorac_ckpt_push_loss(s, i, NAN)) != LORAC_OK) goto done;
    }
#undef FAIL
    {
        lorac_st *t;
        lorac_path_join(path, sizeof path, dir, "trainable.safetensors");
        st = lorac_st_open(path, &t);
        if (st != LORAC_OK) goto done;
        restore_ctx rc = {t, path, LORAC_OK};
        lorac_for_each_trainable(m, restore_weight, &rc);
        lorac_st_close(t);
        st = rc.s;
    }
    if (st == LORAC_OK) st = lorac_optim_load(opt, lorac_path_join(path, sizeof path, dir, "optimizer.safetensors"));
done:
    cJSON_Delete(j);
    if (st != LORAC_OK) lorac_ckpt_state_free(s);
    return st;
}

/* ---- metrics ------------------------------------------------------------- */

typedef struct {
    const char *d;
    size_t n;
} buf_view;

static int write_view(void *ctx, FILE *f) {
    const buf_view *b = ctx;
    return b->n && fwrite(b->d, 1, b->n, f) != b->n;
}

lorac_status lorac_ckpt_trim_metrics(const char *path, int step) {
    if (!path || !lorac_file_exists(path)) return LORAC_OK;
    char *txt;
    size_t len;
    LORAC_TRY(lorac_read_file(path, (size_t)1 << 31, &txt, &len));
    char *out = malloc(len + 1);
    if (!out) {
        free(txt);
        return lorac_fail(LORAC_ERR_NOMEM, "out of memory trimming %s", path);
    }
    size_t o = 0;
    for (char *line = txt; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) break; /* a torn last line (killed mid-write) */
        *nl = 0;
        cJSON *j = cJSON_Parse(line);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "step");
        int keep = j && (!cJSON_IsNumber(s) || s->valuedouble <= step);
        cJSON_Delete(j);
        if (keep) {
            size_t k = (size_t)(nl - line);
            memcpy(out + o, line, k);
            out[o + k] = '\n';
            o += k + 1;
        }
        line = nl + 1;
    }
    free(txt);
    buf_view b = {out, o};
    lorac_status st = lorac_write_atomic_stream(path, write_view, &b);
    free(out);
    return st;
}
