/* api_chat.h - the chat format of an llm (internal to the API and the
 * code built on it). */
#ifndef LORAC_API_API_CHAT_H
#define LORAC_API_API_CHAT_H

#include "api/api.h"
#include "io/chat.h"

/* name NULL / "auto": the template of the llm's tokenizer (a --tokenizer
 * path given at open), else of the model (GGUF metadata or directory), else
 * alpaca; a template of no known family is an error. A named family keeps
 * the template's details when the template is of that family. where gets
 * the template's source, or why there is none. */
lorac_status lorac_api_chat_format(const lorac_llm *llm, const char *name, lorac_chat_format *f, char *where,
                                   size_t n_where);

#endif
