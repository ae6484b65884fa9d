/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: parsers for the numbers users type: sizes (rates in bytes per
 * second too), durations, plain numbers and HOST:PORT pairs.
 *
 * Pure functions with no I/O: they return -1 and set errno (EINVAL for
 * malformed text, ERANGE for values out of range) and the caller, which
 * knows which flag or parameter the text came from, reports the error.
 */
#ifndef STM_COMMON_PARSE_H
#define STM_COMMON_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* "65536", "64K", "64k", "64KiB", "1M", "2G", "1T", "4096b"; binary
 * multiples (K = 1024).  No negative numbers, no overflow. */
int parse_size (const char *text, uint64_t *bytes);

/* "30s", "200ms", "5m", "1h", "1.5s", "250us", "100ns"; a bare number is
 * in units of default_unit_ns nanoseconds (NS_PER_MS for milliseconds,
 * NS_PER_S for seconds: see time_units.h), and is malformed (EINVAL) when
 * default_unit_ns is 0.  Result in nanoseconds. */
int parse_duration (const char *text, uint64_t default_unit_ns, uint64_t *ns);

/* A plain unsigned decimal with no sign and no trailing text. */
int parse_u64 (const char *text, uint64_t *value);

/* "HOST:PORT", "[v6addr]:PORT" or ":PORT" (host "" means any address).
 * host must have room for hostlen bytes (ERANGE if the host is longer);
 * port is 0..65535.  Port 0 is accepted because it means "pick a free
 * port" to a listener; callers that need a real port (a connecting
 * client) check for 0 themselves. */
int parse_host_port (const char *text, char *host, size_t hostlen, uint16_t *port);

#endif /* STM_COMMON_PARSE_H */
