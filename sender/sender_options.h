/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the command-line options, parsed by main.c and read by the
 * migration.  Plain data, filled once and never changed afterwards.
 */
#ifndef STM_SENDER_OPTIONS_H
#define STM_SENDER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "compress_policy.h"
#include "convergence.h"
#include "tls_transport.h"
#include "wire.h"

enum flip_mode {
  FLIP_FENCE,       /* the source fails every request after the flip */
  FLIP_FORWARD,     /* the source forwards every request to the destination */
};

enum cutover_mode {
  CUTOVER_AUTO,     /* cut over as soon as the copy fits the budget */
  CUTOVER_MANUAL,   /* then stay ready until CUTOVER on the command socket */
};

/* One disk to migrate: --disk name=,source=,control=, or --source and
 * --control (name NULL). */
struct sender_disk {
  const char *name;
  const char *source_uri;        /* NBD-URI through the filter */
  const char *control_path;      /* the filter's control socket; NULL only
                                    with --compare-only */
};

struct sender_options {
  struct sender_disk disks[WIRE_MAX_DISKS];
  uint32_t ndisks;
  bool named;                    /* given as --disk (feature DISKS) */
  const char *dest;              /* --dest HOST:PORT as typed */
  char dest_host[256];
  uint16_t dest_port;
  struct tls_options tls;
  enum flip_mode flip;
  const char *forward_uri;       /* --flip forward=URI, or NULL: COMMITTED's */
  uint64_t max_downtime_ns;      /* --max-downtime */
  uint32_t max_passes;           /* --max-passes */
  enum convergence_mode converge;  /* --converge throttle|force|abort|mirror|
                                      mirror-sync */
  uint64_t mirror_ring;          /* --mirror-ring: each disk's ring, bytes */
  uint64_t mirror_wait_ms;       /* --mirror-wait: mirror-sync's timeout */
  uint64_t rate;                 /* --rate bytes/s, 0 = unlimited */
  enum compress_mode compress;   /* --compress auto|off|zstd[:LEVEL] */
  int compress_level;
  bool json;                     /* --json */
  bool progress;                 /* --progress / --no-progress */
  uint64_t retry_timeout_ns;     /* --retry-timeout, 0 = never reconnect */
  const char *report_path;       /* --report FILE.html, or NULL */
  enum cutover_mode cutover;     /* --cutover auto|manual */
  const char *command_socket;    /* --command-socket PATH, or NULL */
  bool compare;                  /* --compare: compare against whatever the
                                    destination's outputs hold */
  bool verify;                   /* --verify: compare source and destination
                                    at the freeze, before the commit */
  bool compare_only;             /* --compare-only: compare, send no data */
};

#endif /* STM_SENDER_OPTIONS_H */
