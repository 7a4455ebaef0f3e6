/* http.h - the HTTP server of lorac serve (libmicrohttpd): routes requests
 * to the engine and writes the answers (http.c has the details). */
#ifndef LORAC_SERVE_HTTP_H
#define LORAC_SERVE_HTTP_H

#include "lorac_serve.h"
#include "serve/engine.h"

typedef struct lorac_http lorac_http;

/* Listen on o->host:o->port (0: any free port; *port gets the one bound). */
lorac_status lorac_http_start(lorac_engine *e, const lorac_serve_opts *o, lorac_http **out, int *port);
/* Stop accepting new connections (the open ones go on). */
void lorac_http_quiesce(lorac_http *h);
/* Wait up to wait_s seconds for the requests in flight to complete, then
 * close every connection and free h. Accepts NULL. */
void lorac_http_stop(lorac_http *h, double wait_s);

#endif
