/* stm-send: deriving the migration id (see migration_id.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "migration_id.h"

int
migration_id_derive (const struct migration_id_inputs *in,
                     uint8_t id[WIRE_MIGRATION_ID_LEN])
{
  /* Fields are separated by newlines, which none of them can contain
   * except the path and the destination, and those come last but one and
   * last with their lengths given, so two different inputs never produce
   * the same text. */
  char text[8192];
  int n = snprintf (text, sizeof text,
                    "stm migration id v1\nmachine=%s\npid=%ld\nstart=%" PRIu64
                    "\nsize=%" PRIu64 "\ncontrol=%zu:%s\ndest=%zu:%s\n",
                    in->machine_id, (long) in->filter_pid, in->filter_start_time,
                    in->image_size, strlen (in->control_path), in->control_path,
                    strlen (in->dest), in->dest);
  if (n < 0 || (size_t) n >= sizeof text)
    return -1;

  uint8_t digest[32];
  if (gnutls_hash_fast (GNUTLS_DIG_SHA256, text, n, digest) < 0)
    return -1;
  memcpy (id, digest, WIRE_MIGRATION_ID_LEN);
  return 0;
}

/* The first line of a small file, without its newline. */
static int
read_first_line (const char *path, char *buf, size_t len)
{
  FILE *fp = fopen (path, "re");
  if (fp == NULL)
    return -1;
  char *r = fgets (buf, len, fp);
  fclose (fp);
  if (r == NULL)
    return -1;
  buf[strcspn (buf, "\n")] = '\0';
  return buf[0] ? 0 : -1;
}

/* Field 22 of /proc/PID/stat: the process start time.  The command name
 * (field 2) may contain spaces and parentheses, so count from the last ')'. */
static int
process_start_time (pid_t pid, uint64_t *start)
{
  char path[64], buf[1024];
  snprintf (path, sizeof path, "/proc/%ld/stat", (long) pid);
  FILE *fp = fopen (path, "re");
  if (fp == NULL)
    return -1;
  size_t n = fread (buf, 1, sizeof buf - 1, fp);
  fclose (fp);
  buf[n] = '\0';
  char *p = strrchr (buf, ')');
  if (p == NULL)
    return -1;
  /* After ')' come fields 3 onwards; the start time is the 20th of them. */
  for (int field = 3; field < 22; field++) {
    p = strchr (p + 1, ' ');
    if (p == NULL)
      return -1;
  }
  char *end;
  errno = 0;
  unsigned long long v = strtoull (p + 1, &end, 10);
  if (errno || end == p + 1)
    return -1;
  *start = v;
  return 0;
}

int
migration_id_make (int control_fd, const char *control_path,
                   uint64_t image_size, const char *dest,
                   uint8_t id[WIRE_MIGRATION_ID_LEN], bool *stable)
{
  char machine[256];
  struct ucred cred;
  socklen_t credlen = sizeof cred;
  struct migration_id_inputs in = {
    .machine_id = machine, .control_path = control_path,
    .image_size = image_size, .dest = dest,
  };

  *stable = false;
  if (read_first_line ("/etc/machine-id", machine, sizeof machine) == -1 &&
      gethostname (machine, sizeof machine) == -1)
    goto random;
  machine[sizeof machine - 1] = '\0';
  if (getsockopt (control_fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1 ||
      cred.pid <= 0)
    goto random;
  in.filter_pid = cred.pid;
  if (process_start_time (cred.pid, &in.filter_start_time) == -1)
    goto random;
  if (migration_id_derive (&in, id) == -1)
    goto random;
  *stable = true;
  return 0;

 random:
  if (getrandom (id, WIRE_MIGRATION_ID_LEN, 0) != WIRE_MIGRATION_ID_LEN)
    return -1;
  return 0;
}

void
migration_id_hex (const uint8_t id[WIRE_MIGRATION_ID_LEN], char *out)
{
  for (size_t i = 0; i < WIRE_MIGRATION_ID_LEN; i++)
    sprintf (&out[2 * i], "%02x", id[i]);
}
