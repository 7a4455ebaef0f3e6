/* lorac.h - the public API of liblorac: LoRA / QLoRA fine-tuning of
 * pretrained transformers in C. This header and the ones it includes are
 * the whole public surface: an application includes it and links liblorac
 * (pkg-config lorac, or CMake find_package(lorac) -> lorac::lorac); nothing
 * under src/ is public. The declarations live by topic in include/lorac/,
 * each with its contract comment:
 *   lorac/core.h       version, LORAC_API, status codes and errors, log, threads
 *   lorac/model.h      lorac_llm: open / close, info, modules, parameters, create
 *   lorac/tokenizer.h  lorac_tok: encode / decode, chat templates
 *   lorac/adapter.h    adapters: apply / load / switch / combine / save / merge /
 *                      export, merged checkpoints, LoRA GGUF files
 *   lorac/infer.h      logits, classify, generate
 *   lorac/data.h       data sets: lorac_data_config, lorac_data
 *   lorac/train.h      training and evaluation, in one call or in stages,
 *                      per-module LoRA queries, checkpoints
 *   lorac/ranks.h      data-parallel ranks
 * A subheader may be included alone (it includes what it needs); including
 * lorac.h is the usual way, and what the conventions below speak of.
 *
 * Conventions
 *  - One prefix: lorac_. Every fallible call returns lorac_status; on failure
 *    lorac_last_error() holds one line: what went wrong, where, and a hint.
 *  - Ownership: a *_create / *_open / *_load returns an object the caller
 *    owns and releases with the matching *_destroy / *_close / *_free, each of
 *    which accepts NULL. Buffers the library returns through `T **out`
 *    (token ids, text) are malloc'd and released with lorac_free.
 *  - Options structs start with `size_t size`, set by their *_init function
 *    (sizeof the struct this header declares): a size the library does not
 *    know is LORAC_ERR_ARG, so a program built against another version of
 *    this header is told, never misread.
 *  - The library never prints and never exits; progress goes through the
 *    optional log callback and the per-call callbacks.
 *  - Threads: a handle is not internally locked. Calls on *different*
 *    handles may run on different threads at once; calls on one handle (and
 *    on a tokenizer borrowed from it) must not overlap, unless the call is
 *    marked "[read-only]" below, which may overlap with other read-only
 *    calls on the same handle; calls marked "[one thread per llm]" take the
 *    handle for themselves; "[any thread]" calls touch no shared state.
 *    The error message is per thread.
 *    lorac_set_threads and lorac_set_log are process-wide: call them before
 *    starting threads that use the library.
 *  - After lorac_llm_close(llm) every use of llm, of its tokenizer
 *    (lorac_llm_tok) and of strings it returned (lorac_llm_label, module
 *    names) is invalid (undefined behaviour, not checked). NULL handles are
 *    checked: every call given a NULL handle returns LORAC_ERR_ARG (or 0 /
 *    NULL / -1 for the calls that return values, as documented).
 *
 * Names: internal code (src/) uses lorac_model, lorac_tokenizer,
 * lorac_adapter*, lorac_train*, lorac_generate; the public API lives in
 * namespaces no internal name uses - lorac_llm* (a model with its tokenizer
 * and adapters), lorac_tok* (a tokenizer), lorac_chat_message,
 * lorac_train_config / lorac_data_config / lorac_gen_params, lorac_data_*
 * (a loaded data set), lorac_ranks* (data-parallel ranks), lorac_checkpoint_*,
 * lorac_fit_report - so the two never
 * collide and the shared library exports exactly the names declared here.
 */
#ifndef LORAC_H
#define LORAC_H

#include "lorac/core.h"
#include "lorac/model.h"
#include "lorac/tokenizer.h"
#include "lorac/adapter.h"
#include "lorac/infer.h"
#include "lorac/data.h"
#include "lorac/train.h"
#include "lorac/ranks.h"

#endif
