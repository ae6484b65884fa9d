/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: quantities in words for people, "1.5 GiB" style, and hex digits.
 *
 * Messages, the progress bar and the report page all print byte counts;
 * written once here so they all print them alike.  Pure, no I/O.
 */
#ifndef STM_COMMON_HUMAN_UNITS_H
#define STM_COMMON_HUMAN_UNITS_H

#include <stddef.h>

/* bytes as "512 B", "1.5 GiB" (binary units, one decimal past bytes);
 * a negative or non-finite count prints as 0 B. */
void format_bytes (char *buf, size_t len, double bytes);

/* The value of a hexadecimal digit (either case), or -1. */
int hex_digit_value (char c);

#endif /* STM_COMMON_HUMAN_UNITS_H */
