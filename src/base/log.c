#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

static enum sw_log_level min_level = SW_LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

void sw_log_init(enum sw_log_level min)
{
	min_level = min;
}

int sw_log_level_parse(const char *s, enum sw_log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum sw_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool sw_log_enabled(enum sw_log_level lvl)
{
	return lvl >= min_level;
}

static void put(struct sw_logline *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - 1 - l->len; /* keep one byte for '\n' */
	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

void sw_log_begin(struct sw_logline *l, enum sw_log_level lvl, const char *event)
{
	if ((unsigned)lvl > SW_LOG_ERROR)
		lvl = SW_LOG_ERROR; /* never index past level_names */
	l->len = 0;
	l->on = sw_log_enabled(lvl);
	if (!l->on)
		return;
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	char head[96];
	int n = snprintf(head, sizeof(head), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl]);
	put(l, head, (size_t)n);
	put(l, event, strlen(event));
}

void sw_log_str(struct sw_logline *l, const char *key, struct sw_str v)
{
	static const char hex[] = "0123456789abcdef";
	if (!l->on)
		return;
	put(l, " ", 1);
	put(l, key, strlen(key));
	put(l, "=\"", 2);
	size_t shown = v.len > 256 ? 256 : v.len;
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)v.p[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			put(l, e, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };
			put(l, e, 4);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
	if (shown < v.len)
		put(l, "...", 3);
	put(l, "\"", 1);
}

void sw_log_cstr(struct sw_logline *l, const char *key, const char *v)
{
	sw_log_str(l, key, (struct sw_str){ v, v ? strlen(v) : 0 });
}

void sw_log_int(struct sw_logline *l, const char *key, long long v)
{
	if (!l->on)
		return;
	char tmp[64];
	int n = snprintf(tmp, sizeof(tmp), " %s=%lld", key, v);
	put(l, tmp, (size_t)n);
}

void sw_log_end(struct sw_logline *l)
{
	if (!l->on)
		return;
	l->buf[l->len++] = '\n';
	/* One write per event so lines from several workers never interleave. */
	ssize_t w = write(STDERR_FILENO, l->buf, l->len);
	(void)w;
}

void sw_logf(enum sw_log_level lvl, const char *event, const char *fmt, ...)
{
	struct sw_logline l;
	sw_log_begin(&l, lvl, event);
	if (!l.on)
		return;
	if (fmt && *fmt) {
		char tmp[1024];
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
		va_end(ap);
		if (n > 0) {
			put(&l, " ", 1);
			put(&l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
		}
	}
	sw_log_end(&l);
}
