/* Structured logs: one logfmt event per line on stderr (issue 2).
 * Library code does not log (STYLE.md §7); the request layer logs once. */
#ifndef SW_BASE_LOG_H
#define SW_BASE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include "base/str-t.h"

enum sw_log_level { SW_LOG_DEBUG = 0, SW_LOG_INFO, SW_LOG_WARN, SW_LOG_ERROR };

/* Set once at start-up, before workers start; read-only afterwards. */
void sw_log_init(enum sw_log_level min);
int sw_log_level_parse(const char *s, enum sw_log_level *out);
bool sw_log_enabled(enum sw_log_level lvl);

/* A line is built with typed fields so values are always escaped: a peer
 * controls most of what we log and must not be able to forge fields. */
struct sw_logline {
	char buf[1536];
	size_t len;
	bool on;
};

void sw_log_begin(struct sw_logline *l, enum sw_log_level lvl, const char *event);
void sw_log_str(struct sw_logline *l, const char *key, struct sw_str v);
void sw_log_cstr(struct sw_logline *l, const char *key, const char *v);
void sw_log_int(struct sw_logline *l, const char *key, long long v);
void sw_log_end(struct sw_logline *l);

/* Shorthand for events whose fields are all trusted text (startup, config). */
void sw_logf(enum sw_log_level lvl, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
