#include "base/lock.h"

_Thread_local struct sw_lockstat sw_lockstat;
