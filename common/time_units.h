/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the units of time, in one place.
 *
 * Durations in stm are counted in nanoseconds (uint64_t) and converted at
 * the edges: milliseconds on the control protocol and in messages,
 * microseconds for measured downtimes, seconds for libev timers.  Writing
 * the factors out by hand in each file invited typos (a 1000000 where
 * 1000000000 was meant compiles just as well) and let the same constant
 * grow several names, so every file takes them from here.  They are
 * uint64_t, so a product such as 30 * NS_PER_S is computed in 64 bits.
 */
#ifndef STM_COMMON_TIME_UNITS_H
#define STM_COMMON_TIME_UNITS_H

#include <stdint.h>

#define NS_PER_US UINT64_C (1000)
#define NS_PER_MS UINT64_C (1000000)
#define NS_PER_S  UINT64_C (1000000000)
#define US_PER_MS UINT64_C (1000)
#define MS_PER_S  UINT64_C (1000)

#endif /* STM_COMMON_TIME_UNITS_H */
