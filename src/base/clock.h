#ifndef SW_BASE_CLOCK_H
#define SW_BASE_CLOCK_H

#include <stdint.h>

/* Monotonic milliseconds (timers) and wall-clock seconds (expiry stored on disk). */
uint64_t sw_now_ms(void);
int64_t sw_wall_s(void);

#endif
