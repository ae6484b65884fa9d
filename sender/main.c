/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the command line.
 *
 * Parses and checks the options (exit status 2 with a message and a pointer
 * to --help on any usage error), then hands them to migration_run, whose
 * result is the exit status: 0 only after a successful flip, 1 on failure
 * with the source thawed and authoritative; or, with --compare-only, to
 * compare_run: 0 when source and destination are identical, 1 when not
 * or when they could not be compared.
 */
#include <config.h>

#include <getopt.h>
#include <sys/un.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "compare_run.h"
#include "control_proto.h"
#include "disk_spec.h"
#include "log.h"
#include "mirror_ring.h"
#include "run.h"
#include "parse.h"
#include "sender_options.h"
#include "zstd_frame.h"


#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

/* The same shape as stm-recv's (common/log.h). */
#define usage_error log_usage_error

static bool nbd_uri_plausible (const char *uri);

/* --disk's strings live for the whole run. */
static struct disk_spec disk_specs[WIRE_MAX_DISKS];

/* One --disk option: a disk of the group, in the order given.  Parsed
 * once every option is read, since --compare-only (which may come after
 * it) makes control= optional. */
static void
add_disk (struct sender_options *o, const char *arg)
{
  char why[256];
  struct disk_spec *spec = &disk_specs[o->ndisks];

  if (disk_spec_parse (arg, !o->compare_only, spec, why, sizeof why) == -1)
    usage_error ("--disk '%s': %s", arg, why);
  for (uint32_t i = 0; i < o->ndisks; i++) {
    if (strcmp (o->disks[i].name, spec->name) == 0)
      usage_error ("--disk '%s': the name %s is given twice", arg, spec->name);
    if (spec->control != NULL && o->disks[i].control_path != NULL &&
        strcmp (o->disks[i].control_path, spec->control) == 0)
      usage_error ("--disk '%s': the control socket %s is given twice (each "
                   "disk needs its own filter)", arg, spec->control);
  }
  if (!nbd_uri_plausible (spec->source))
    usage_error ("--disk '%s': source=%s is not an NBD URI (expected nbd://, "
                 "nbds://, nbd+unix:// or nbds+unix://)", arg, spec->source);
  o->disks[o->ndisks++] = (struct sender_disk) {
    .name = spec->name, .source_uri = spec->source, .control_path = spec->control,
  };
  o->named = true;
}

/* After the options: the one-disk form (--source, --control) or the
 * group (--disk), never both. */
static void
set_disks (struct sender_options *o, const char *source_uri, const char *control_path)
{
  if (o->named && (source_uri != NULL || control_path != NULL))
    usage_error ("%s: give either --source and --control (one disk) or --disk "
                 "(a group of named disks), not both",
                 source_uri != NULL ? "--source" : "--control");
  if (!o->named) {
    if (source_uri == NULL)
      usage_error ("--source NBD-URI (or --disk) is required");
    /* A comparison may read a source that is not behind the filter (then
     * assumed idle); a migration needs the filter. */
    if (control_path == NULL && !o->compare_only)
      usage_error ("--control PATH is required");
    o->disks[0] = (struct sender_disk) {
      .name = NULL, .source_uri = source_uri, .control_path = control_path,
    };
    o->ndisks = 1;
  }
  /* One URI cannot be every disk's destination. */
  if (o->forward_uri != NULL && o->ndisks > 1)
    usage_error ("--flip forward=%s: a group of several disks forwards each "
                 "disk to the export the receiver announces for it; give "
                 "--flip forward without a URI", o->forward_uri);
}

static void
usage (FILE *fp)
{
  fprintf (fp,
"Usage: stm-send (--source NBD-URI --control PATH\n"
"                 | --disk name=NAME,source=NBD-URI,control=PATH ...)\n"
"                --dest HOST:PORT\n"
"                (--tls-psk FILE [--tls-user NAME] | --tls-certs DIR | --insecure)\n"
"                [--flip fence|forward[=NBD-URI]] [--max-downtime MS]\n"
"                [--max-passes N]\n"
"                [--converge throttle|force|abort|mirror|mirror-sync]\n"
"                [--mirror-ring BYTES] [--mirror-wait MS]\n"
"                [--rate BYTES/s] [--compress auto|off|zstd[:LEVEL]] [--json]\n"
"                [--progress|--no-progress] [--retry-timeout DURATION]\n"
"                [--report FILE.html]\n"
"                [--cutover auto|manual] [--command-socket PATH]\n"
"                [--compare] [--verify]\n"
"       stm-send --compare-only (--source NBD-URI [--control PATH]\n"
"                 | --disk name=NAME,source=NBD-URI[,control=PATH] ...)\n"
"                --dest HOST:PORT\n"
"                (--tls-psk FILE [--tls-user NAME] | --tls-certs DIR | --insecure)\n"
"                [--rate BYTES/s] [--json] [--progress|--no-progress]\n"
"\n"
"Live-migrate the disk served by nbdkit --filter=migrate to stm-recv, or a\n"
"group of named disks (a VM's), cut over as one.\n"
"\n"
"  --source NBD-URI     the source disk, through the migrate filter\n"
"  --control PATH       the filter's control socket (migrate-control=PATH)\n"
"  --disk name=NAME,source=NBD-URI,control=PATH\n"
"                       one disk of a group (repeatable, up to " STRINGIFY (WIRE_MAX_DISKS) ";\n"
"                       \",,\" for a comma in a value); stm-recv must have\n"
"                       --output NAME=IMAGE for each NAME\n"
"  --dest HOST:PORT     where stm-recv listens\n"
"  --tls-psk FILE       TLS with a pre-shared key file (psktool format)\n"
"  --tls-user NAME      the PSK identity to use (default: the first)\n"
"  --tls-certs DIR      TLS with X.509: ca-cert.pem, client-cert.pem, client-key.pem\n"
"  --insecure           no TLS (trusted networks only)\n"
"  --flip fence         after cutover the source fails all I/O (default)\n"
"  --flip forward[=URI] after cutover the source forwards I/O to URI\n"
"                       (default: the URI the receiver announces)\n"
"  --max-downtime MS    largest acceptable cutover (default 200 ms; \"0.2s\" works;\n"
"                       more than 0)\n"
"  --max-passes N       at most N passes, the final one included: cut over\n"
"                       after pass N-1 even if not converged (default 30, at\n"
"                       least 2; with --converge=abort, give up instead)\n"
"  --converge POLICY    how the copy catches up with the guest: mirror (default)\n"
"                       hands every guest write to the destination as it\n"
"                       happens, so one pass suffices (the write is\n"
"                       acknowledged once queued); mirror-sync acknowledges\n"
"                       it only once the destination has it durable; and\n"
"                       when the dirty set stops shrinking for two passes:\n"
"                       throttle slows guest writes step by step until it\n"
"                       converges (as mirror does too, if it must); force\n"
"                       cuts over anyway; abort gives up (exit 1, the\n"
"                       source thawed)\n"
"  --mirror-ring BYTES  the mirror queue per disk, a power of two from 1M to\n"
"                       4G (default 64M); a full queue marks writes dirty\n"
"  --mirror-wait MS     the longest a guest write waits for room in the queue\n"
"                       (mirror-sync: for the destination) before it is\n"
"                       marked dirty (default 1000)\n"
"  --rate BYTES/s       limit the transfer rate (\"100M\" = 100 MiB/s)\n"
"  --compress MODE      compress data with zstd: auto (default) when the link\n"
"                       holds the copy back and compression speeds it up; off;\n"
"                       zstd[:LEVEL] whenever it pays (level -5 to -1 or 1 to\n"
"                       19, default -1)\n"
"  --json               print events as JSON lines on stdout\n"
"  --progress           show a progress bar on stderr (default on a terminal)\n"
"  --no-progress        do not\n"
"  --report FILE.html   at the end, write a page with a timeline of the migration\n"
"  --retry-timeout D    after losing the receiver, reconnect and resume for up\n"
"                       to D (default 5m; a bare number is seconds; 0 = never)\n"
"  --cutover auto       cut over as soon as the copy fits --max-downtime (default)\n"
"  --cutover manual     then stay ready, keeping the copy current, until CUTOVER\n"
"                       (or ABORT) on the command socket; needs --command-socket\n"
"  --command-socket P   serve STATUS, CUTOVER and ABORT on the Unix socket P\n"
"                       (socat - UNIX-CONNECT:P; see stm-send(1))\n"
"  --compare            have stm-recv keep what its outputs hold (an earlier\n"
"                       copy, the disk's old home) and send only the blocks\n"
"                       whose hashes differ; it compares on its own after\n"
"                       stm-recv --force and when resuming\n"
"  --verify             before the commit, with the source frozen, compare\n"
"                       every disk with the destination by hashes; a\n"
"                       difference thaws the source and exits 1 (the guest\n"
"                       waits for the whole comparison)\n"
"  --compare-only       only compare the source with what stm-recv holds (by\n"
"                       keyed hashes): no data is sent, nothing is frozen,\n"
"                       flipped or recorded; each differing range is reported;\n"
"                       with --control (control= of --disk) blocks the guest\n"
"                       writes meanwhile are left out, without it the source\n"
"                       is assumed idle\n"
"  --help, --version\n"
"\n"
"Exit status: 0 after a successful flip (of every disk); 1 on failure (or\n"
"ABORT, SIGTERM), the source (every disk's) thawed and authoritative; 2 on\n"
"usage errors; 3 when the source does not serve the guest (it flipped for\n"
"another migration, a flip's outcome is unknown, or a group's disks could\n"
"not all be flipped or fenced).  With --compare-only: 0 when identical, 1\n"
"when not or when they could not be compared, 2 on usage errors.\n");
}


enum {
  OPT_SOURCE = 256, OPT_CONTROL, OPT_DEST, OPT_TLS_PSK, OPT_TLS_USER,
  OPT_TLS_CERTS, OPT_INSECURE, OPT_FLIP, OPT_MAX_DOWNTIME, OPT_MAX_PASSES,
  OPT_RATE, OPT_JSON, OPT_PROGRESS, OPT_NO_PROGRESS, OPT_HELP, OPT_VERSION,
  OPT_CONVERGE,
  OPT_RETRY_TIMEOUT,
  OPT_REPORT,
  OPT_CUTOVER,
  OPT_COMMAND_SOCKET,
  OPT_DISK,
  OPT_MIRROR_RING,
  OPT_MIRROR_WAIT,
  OPT_COMPARE,
  OPT_COMPRESS,
  OPT_COMPARE_ONLY,
  OPT_VERIFY,
};

static const struct option long_options[] = {
  { "source", required_argument, NULL, OPT_SOURCE },
  { "control", required_argument, NULL, OPT_CONTROL },
  { "dest", required_argument, NULL, OPT_DEST },
  { "tls-psk", required_argument, NULL, OPT_TLS_PSK },
  { "tls-user", required_argument, NULL, OPT_TLS_USER },
  { "tls-certs", required_argument, NULL, OPT_TLS_CERTS },
  { "insecure", no_argument, NULL, OPT_INSECURE },
  { "flip", required_argument, NULL, OPT_FLIP },
  { "max-downtime", required_argument, NULL, OPT_MAX_DOWNTIME },
  { "max-passes", required_argument, NULL, OPT_MAX_PASSES },
  { "converge", required_argument, NULL, OPT_CONVERGE },
  { "rate", required_argument, NULL, OPT_RATE },
  { "json", no_argument, NULL, OPT_JSON },
  { "progress", no_argument, NULL, OPT_PROGRESS },
  { "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
  { "retry-timeout", required_argument, NULL, OPT_RETRY_TIMEOUT },
  { "report", required_argument, NULL, OPT_REPORT },
  { "cutover", required_argument, NULL, OPT_CUTOVER },
  { "command-socket", required_argument, NULL, OPT_COMMAND_SOCKET },
  { "disk", required_argument, NULL, OPT_DISK },
  { "mirror-ring", required_argument, NULL, OPT_MIRROR_RING },
  { "mirror-wait", required_argument, NULL, OPT_MIRROR_WAIT },
  { "compare", no_argument, NULL, OPT_COMPARE },
  { "compress", required_argument, NULL, OPT_COMPRESS },
  { "compare-only", no_argument, NULL, OPT_COMPARE_ONLY },
  { "verify", no_argument, NULL, OPT_VERIFY },
  { "help", no_argument, NULL, OPT_HELP },
  { "version", no_argument, NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

/* Is uri shaped like an NBD URI libnbd can connect to?  The full parse
 * happens in the filter at the flip, while the guest is held; this catches
 * what can be caught now, at no cost to the guest: a scheme that is not
 * NBD's, no host, or a Unix-socket URI without socket=. */
static bool
nbd_uri_plausible (const char *uri)
{
  static const char *const schemes[] = {
    "nbd://", "nbds://", "nbd+tcp://", "nbds+tcp://",
    "nbd+unix://", "nbds+unix://", "nbd+vsock://", "nbds+vsock://",
  };
  for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
    size_t n = strlen (schemes[i]);
    if (strncmp (uri, schemes[i], n) != 0)
      continue;
    const char *rest = uri + n;
    if (strstr (schemes[i], "+unix") != NULL)
      return strstr (rest, "socket=") != NULL;
    /* TCP and vsock name a host (or a CID) before any path or query. */
    return rest[0] != '\0' && rest[0] != '/' && rest[0] != '?';
  }
  return false;
}

static void
parse_flip (const char *arg, struct sender_options *o)
{
  if (strcmp (arg, "fence") == 0) {
    o->flip = FLIP_FENCE;
    o->forward_uri = NULL;
  }
  else if (strcmp (arg, "forward") == 0) {
    o->flip = FLIP_FORWARD;
    o->forward_uri = NULL;
  }
  else if (strncmp (arg, "forward=", 8) == 0 && arg[8] != '\0') {
    /* Checked now rather than at the flip, when the guest is held. */
    if (strlen (arg + 8) >= CONTROL_MAX_URI || strpbrk (arg + 8, " \t\r\n") != NULL)
      usage_error ("--flip forward=URI: the URI must be shorter than %s bytes "
                   "and hold no spaces or line breaks", STRINGIFY (CONTROL_MAX_URI));
    if (!nbd_uri_plausible (arg + 8))
      usage_error ("--flip forward=%s: not an NBD URI (expected nbd://HOST[:PORT]/, "
                   "nbds://..., or nbd+unix:///?socket=PATH)", arg + 8);
    o->flip = FLIP_FORWARD;
    o->forward_uri = arg + 8;
  }
  else
    usage_error ("--flip '%s': expected fence, forward or forward=NBD-URI", arg);
}

static void
parse_dest (const char *arg, struct sender_options *o)
{
  o->dest = arg;
  if (parse_host_port (arg, o->dest_host, sizeof o->dest_host, &o->dest_port) == -1)
    usage_error ("--dest '%s': expected HOST:PORT or [IPv6]:PORT with a port "
                 "from 1 to 65535", arg);
  if (o->dest_host[0] == '\0')
    usage_error ("--dest '%s': a host is needed: HOST:PORT or [IPv6]:PORT", arg);
  /* Port 0 means "any free port" to a listener, nothing to connect to. */
  if (o->dest_port == 0)
    usage_error ("--dest '%s': port 0 cannot be connected to; give a port "
                 "from 1 to 65535", arg);
}

static void
parse_max_downtime (const char *arg, struct sender_options *o)
{
  if (parse_duration (arg, 1000000, &o->max_downtime_ns) == -1)
    usage_error ("--max-downtime '%s': expected a duration such as 200, "
                 "200ms or 0.2s", arg);
  /* A cutover always holds guest writes for a moment (the freeze, the
   * commit, the flip), so no cutover fits a budget of 0; and 0 as "no
   * limit" would be a guess.  Refuse it rather than migrate to an
   * unstated meaning. */
  if (o->max_downtime_ns == 0)
    usage_error ("--max-downtime '%s': 0 allows no cutover at all (every "
                 "cutover holds guest writes for a moment); give a positive "
                 "duration such as 200ms", arg);
}

static void
parse_cutover (const char *arg, struct sender_options *o)
{
  if (strcmp (arg, "auto") == 0)
    o->cutover = CUTOVER_AUTO;
  else if (strcmp (arg, "manual") == 0)
    o->cutover = CUTOVER_MANUAL;
  else
    usage_error ("--cutover '%s': expected auto or manual", arg);
}

static void
parse_command_socket (const char *arg, struct sender_options *o)
{
  size_t max = sizeof ((struct sockaddr_un *) 0)->sun_path;

  /* A Unix socket's path must fit in sun_path with its NUL. */
  if (arg[0] == '\0' || strlen (arg) >= max)
    usage_error ("--command-socket '%s': expected the path of a Unix socket, "
                 "shorter than %zu bytes", arg, max);
  o->command_socket = arg;
}

/* What is required, and what goes together, once every option is read. */
static void
check_combination (struct sender_options *o, int tls_choices, const char *tls_user)
{
  if (o->dest == NULL)
    usage_error ("--dest HOST:PORT is required");
  if (tls_choices != 1)
    usage_error ("%s: give exactly one of --tls-psk FILE, --tls-certs DIR "
                 "or --insecure",
                 tls_choices == 0 ? "no transport security chosen"
                 : "conflicting transport security options");
  if (tls_user && o->tls.mode != TLS_MODE_PSK)
    usage_error ("--tls-user is only meaningful with --tls-psk");
  o->tls.psk_user = tls_user;
  /* Manual mode waits for a word that must have somewhere to come. */
  if (o->cutover == CUTOVER_MANUAL && o->command_socket == NULL)
    usage_error ("--cutover manual needs --command-socket PATH, the socket on "
                 "which CUTOVER (or ABORT) is given");
}

/* The name of option opt (with its argument arg) if it only means
 * something to a migration, which --compare-only is not: it sends no
 * data, freezes nothing and flips nothing.  NULL for any other. */
static const char *
migration_only_option (int opt, const char *arg)
{
  switch (opt) {
  case OPT_FLIP: return "--flip";
  case OPT_MAX_DOWNTIME: return "--max-downtime";
  case OPT_MAX_PASSES: return "--max-passes";
  case OPT_CONVERGE: return "--converge";
  case OPT_MIRROR_RING: return "--mirror-ring";
  case OPT_MIRROR_WAIT: return "--mirror-wait";
  case OPT_RETRY_TIMEOUT: return "--retry-timeout";
  case OPT_REPORT: return "--report";
  case OPT_COMMAND_SOCKET: return "--command-socket";
  case OPT_COMPARE: return "--compare";
  case OPT_COMPRESS: return "--compress";
  case OPT_VERIFY: return "--verify";
  case OPT_CUTOVER:
    return arg != NULL && strcmp (arg, "manual") == 0 ? "--cutover manual" : NULL;
  default: return NULL;
  }
}

/* --compare-only: no option of a migration's, and the filters' control
 * sockets for every disk or for none (the summary says whether the
 * guest's writes were left out, for the whole comparison). */
static void
check_compare_only (const struct sender_options *o, const char *migration_option)
{
  uint32_t controls = 0;

  if (migration_option != NULL)
    usage_error ("%s cannot be used with --compare-only, which sends no data, "
                 "freezes nothing and flips nothing", migration_option);
  for (uint32_t i = 0; i < o->ndisks; i++)
    controls += o->disks[i].control_path != NULL;
  if (controls != 0 && controls != o->ndisks)
    usage_error ("--compare-only: give control= for every --disk or for none (with "
                 "it, blocks the guest writes during the comparison are left out; "
                 "without it, the source is assumed idle)");
}

/* --converge, --mirror-ring, --mirror-wait. */
static void
parse_convergence_option (int opt, const char *arg, struct sender_options *o)
{
  uint64_t v;

  switch (opt) {
  case OPT_CONVERGE:
    if (strcmp (arg, "throttle") == 0) o->converge = CONVERGE_THROTTLE;
    else if (strcmp (arg, "force") == 0) o->converge = CONVERGE_FORCE;
    else if (strcmp (arg, "abort") == 0) o->converge = CONVERGE_ABORT;
    else if (strcmp (arg, "mirror") == 0) o->converge = CONVERGE_MIRROR;
    else if (strcmp (arg, "mirror-sync") == 0) o->converge = CONVERGE_MIRROR_SYNC;
    else
      usage_error ("--converge '%s': expected throttle, force, abort, mirror or "
                   "mirror-sync", arg);
    return;
  case OPT_MIRROR_RING:
    if (parse_size (arg, &o->mirror_ring) == -1 ||
        !mirror_ring_capacity_ok (o->mirror_ring))
      usage_error ("--mirror-ring '%s': expected a power of two from 1M to 4G", arg);
    return;
  case OPT_MIRROR_WAIT:
    if (parse_duration (arg, 1000000, &v) == -1 || v / 1000000 > 86400000)
      usage_error ("--mirror-wait '%s': expected a duration up to 24h such as "
                   "1000 or 250ms", arg);
    o->mirror_wait_ms = v / 1000000;
    return;
  }
  abort ();
}

int
main (int argc, char *argv[])
{
  struct sender_options o = {
    .flip = FLIP_FENCE,
    .max_downtime_ns = 200 * UINT64_C(1000000),
    .max_passes = 30,
    .converge = CONVERGE_MIRROR,
    .rate = 0,
    .progress = isatty (STDERR_FILENO),
    .retry_timeout_ns = 300 * UINT64_C(1000000000),
    .mirror_ring = 64 * UINT64_C(1024 * 1024),
    .mirror_wait_ms = 1000,
    .compress = COMPRESS_AUTO,
    .compress_level = ZSTD_FRAME_DEFAULT_LEVEL,
  };
  int tls_choices = 0;
  const char *tls_user = NULL;
  const char *disk_args[WIRE_MAX_DISKS];
  uint32_t ndisk_args = 0;
  /* The first option given that only a migration takes. */
  const char *migration_option = NULL;
  const char *source_uri = NULL, *control_path = NULL;
  uint64_t v;
  int c;

  /* getopt's own messages would not say how to get help; ours do.  The
   * leading ":" makes getopt report a missing argument as ':'. */
  opterr = 0;
  while ((c = getopt_long (argc, argv, ":", long_options, NULL)) != -1) {
    if (migration_option == NULL)
      migration_option = migration_only_option (c, optarg);
    switch (c) {
    case OPT_SOURCE: source_uri = optarg; break;
    case OPT_CONTROL: control_path = optarg; break;
    case OPT_DISK:
      if (ndisk_args == WIRE_MAX_DISKS)
        usage_error ("--disk '%s': at most %d disks can be migrated as one group",
                     optarg, WIRE_MAX_DISKS);
      disk_args[ndisk_args++] = optarg;
      break;
    case OPT_DEST: parse_dest (optarg, &o); break;
    case OPT_TLS_PSK:
      o.tls.mode = TLS_MODE_PSK; o.tls.psk_file = optarg; tls_choices++; break;
    case OPT_TLS_USER: tls_user = optarg; break;
    case OPT_TLS_CERTS:
      o.tls.mode = TLS_MODE_X509; o.tls.certs_dir = optarg; tls_choices++; break;
    case OPT_INSECURE: o.tls.mode = TLS_MODE_INSECURE; tls_choices++; break;
    case OPT_FLIP: parse_flip (optarg, &o); break;
    case OPT_MAX_DOWNTIME: parse_max_downtime (optarg, &o); break;
    case OPT_MAX_PASSES:
      /* The full pass and the final pass are two passes, and the final
       * pass counts (see convergence_out_of_passes). */
      if (parse_u64 (optarg, &v) == -1 || v < 2 || v > 1000000)
        usage_error ("--max-passes '%s': expected a number from 2 (the full pass "
                     "and the final pass) to 1000000", optarg);
      o.max_passes = v;
      break;
    case OPT_CONVERGE:
    case OPT_MIRROR_RING:
    case OPT_MIRROR_WAIT:
      parse_convergence_option (c, optarg, &o);
      break;
    case OPT_RATE:
      if (parse_size (optarg, &o.rate) == -1 || o.rate == 0)
        usage_error ("--rate '%s': expected a positive rate in bytes per second "
                     "such as 100M", optarg);
      break;
    case OPT_COMPRESS:
      if (compress_parse (optarg, &o.compress, &o.compress_level) == -1)
        usage_error ("--compress '%s': expected auto, off, zstd or zstd:LEVEL "
                     "(LEVEL from -5 to -1 or 1 to 19)", optarg);
      break;
    case OPT_JSON: o.json = true; break;
    case OPT_PROGRESS: o.progress = true; break;
    case OPT_NO_PROGRESS: o.progress = false; break;
    case OPT_RETRY_TIMEOUT:
      if (parse_duration (optarg, UINT64_C(1000000000), &o.retry_timeout_ns) == -1)
        usage_error ("--retry-timeout '%s': expected a duration such as 300, 5m "
                     "or 0", optarg);
      break;
    case OPT_REPORT:
      if (optarg[0] == '\0')
        usage_error ("%s", "--report: a file name is needed");
      o.report_path = optarg;
      break;
    case OPT_CUTOVER: parse_cutover (optarg, &o); break;
    case OPT_COMMAND_SOCKET: parse_command_socket (optarg, &o); break;
    case OPT_COMPARE: o.compare = true; break;
    case OPT_VERIFY: o.verify = true; break;
    case OPT_COMPARE_ONLY: o.compare_only = true; break;
    case OPT_HELP: usage (stdout); exit (EXIT_SUCCESS);
    case OPT_VERSION: printf ("stm-send %s\n", PACKAGE_VERSION); exit (EXIT_SUCCESS);
    case ':':
      usage_error ("option '%s' needs an argument", argv[optind - 1]);
    default:
      if (optopt != 0 && optopt < 256)
        usage_error ("unknown option '-%c'", optopt);
      usage_error ("unknown or ambiguous option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    usage_error ("unexpected argument '%s'", argv[optind]);
  for (uint32_t i = 0; i < ndisk_args; i++)
    add_disk (&o, disk_args[i]);
  set_disks (&o, source_uri, control_path);
  check_combination (&o, tls_choices, tls_user);
  if (o.compare_only)
    check_compare_only (&o, migration_option);

  /* A receiver that goes away must show up as an error, not kill us. */
  signal (SIGPIPE, SIG_IGN);

  return o.compare_only ? compare_run (&o) : migration_run (&o);
}
