/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: small bit tests on integers.
 *
 * Block sizes must be powers of two everywhere (the filter's
 * migrate-block, the wire HELLO, the receiver's state file, the sender's
 * arithmetic), and the test v & (v - 1) is easy to get subtly wrong (it
 * calls 0 a power of two).  One definition keeps every check the same.
 */
#ifndef STM_COMMON_BITS_H
#define STM_COMMON_BITS_H

#include <stdbool.h>
#include <stdint.h>

/* Is v a power of two (1, 2, 4, ...)?  0 is not. */
static inline bool
is_power_of_two (uint64_t v)
{
  return v != 0 && (v & (v - 1)) == 0;
}

#endif /* STM_COMMON_BITS_H */
