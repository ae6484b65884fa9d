/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: parsing of the control-socket protocol spoken between the migrate
 * filter and its clients (stm-send, or a person with socat).
 *
 * The filter turns each request line into a struct control_request with
 * control_request_parse; the sender picks apart the filter's reply lines
 * with the control_reply_* helpers and control_parse_extent_line.  Nothing
 * here does I/O or allocates, and the inputs are treated as hostile: a
 * request comes from whoever can open the socket, so every byte is checked
 * and every number is parsed strictly (decimal digits only, no sign, no
 * overflow, nothing trailing).  Errors come back as an errno name and a
 * static sentence that the filter can put straight into an ERR reply.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "control_proto.h"

/* A word of a line: a pointer into the caller's buffer and a length, since
 * request lines are not NUL-terminated. */
struct word {
  const char *p;
  size_t len;
};

/* The most words any request has ("MIRROR START n sync t wait w"); one
 * more is stored so that an extra argument is noticed. */
#define MAX_WORDS 8

static bool
is_separator (char c)
{
  return c == ' ' || c == '\t';
}

/* Split [p, p+len) into words separated by runs of spaces or tabs.
 * Returns the number of words found, which may exceed MAX_WORDS (only the
 * first MAX_WORDS are stored). */
static size_t
split_words (const char *p, size_t len, struct word *words)
{
  size_t i = 0, n = 0;

  while (i < len) {
    size_t start;

    while (i < len && is_separator (p[i]))
      i++;
    if (i == len)
      break;
    start = i;
    while (i < len && !is_separator (p[i]))
      i++;
    if (n < MAX_WORDS) {
      words[n].p = p + start;
      words[n].len = i - start;
    }
    n++;
  }
  return n;
}

/* Case-insensitive comparison of a word with an upper- or lower-case ASCII
 * keyword, without the locale (tolower would depend on it). */
static bool
word_is (const struct word *w, const char *keyword)
{
  size_t i, n = strlen (keyword);

  if (w->len != n)
    return false;
  for (i = 0; i < n; i++) {
    char a = w->p[i], b = keyword[i];
    if (a >= 'A' && a <= 'Z')
      a = (char) (a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z')
      b = (char) (b - 'A' + 'a');
    if (a != b)
      return false;
  }
  return true;
}

/* Strict unsigned decimal: one or more digits and nothing else.  Returns 0,
 * or -1 with EINVAL (not a number: empty, sign, hex, trailing junk) or
 * ERANGE (more than 2^64-1). */
static int
parse_decimal (const char *p, size_t len, uint64_t *value)
{
  uint64_t v = 0;
  size_t i;

  if (len == 0) {
    errno = EINVAL;
    return -1;
  }
  for (i = 0; i < len; i++) {
    if (p[i] < '0' || p[i] > '9') {
      errno = EINVAL;
      return -1;
    }
  }
  for (i = 0; i < len; i++) {
    unsigned d = (unsigned) (p[i] - '0');
    if (v > (UINT64_MAX - d) / 10) {
      errno = ERANGE;
      return -1;
    }
    v = v * 10 + d;
  }
  *value = v;
  return 0;
}

/* Parse a numeric argument of a request, choosing the sentence for the
 * ERR reply from the two the caller offers. */
static int
number_argument (const struct word *w, uint64_t *value,
                 const char *why_malformed, const char *why_range,
                 const char **errno_name, const char **why)
{
  if (parse_decimal (w->p, w->len, value) == 0)
    return 0;
  if (errno == ERANGE) {
    *errno_name = "ERANGE";
    *why = why_range;
  }
  else {
    *errno_name = "EINVAL";
    *why = why_malformed;
  }
  return -1;
}

/* Commands without arguments, and what to say when one is given some. */
static const struct {
  const char *word;
  enum control_command command;
  const char *why_extra;
} plain_commands[] = {
  { "STATUS", CONTROL_STATUS, "STATUS takes no arguments" },
  { "SNAPSHOT", CONTROL_SNAPSHOT, "SNAPSHOT takes no arguments" },
  { "FREEZE", CONTROL_FREEZE, "FREEZE takes no arguments" },
  { "THAW", CONTROL_THAW, "THAW takes no arguments" },
};

#define FAIL(name, text)                        \
  do {                                          \
    *errno_name = (name);                       \
    *why = (text);                              \
    return -1;                                  \
  } while (0)

/* The URI argument of FLIP forward and PRECONNECT (what names the
 * command in the messages): one word of printable ASCII that fits, with
 * its NUL, in req->uri. */
static int
uri_argument (const struct word *w, struct control_request *req,
              const char *why_too_long, const char *why_not_ascii,
              const char **errno_name, const char **why)
{
  size_t i;

  if (w->len >= CONTROL_MAX_URI)
    FAIL ("E2BIG", why_too_long);
  /* URIs are printable ASCII (anything else is percent-encoded); the
   * line-wide check already refused control characters. */
  for (i = 0; i < w->len; i++) {
    unsigned char c = (unsigned char) w->p[i];
    if (c <= 0x20 || c >= 0x7f)
      FAIL ("EINVAL", why_not_ascii);
  }
  memcpy (req->uri, w->p, w->len);
  req->uri[w->len] = '\0';
  return 0;
}

static int
parse_flip (const struct word *words, size_t nwords,
            struct control_request *req,
            const char **errno_name, const char **why)
{
  if (nwords < 2)
    FAIL ("EINVAL", "FLIP needs a mode: fence or forward URI");
  if (word_is (&words[1], "fence")) {
    if (nwords > 2)
      FAIL ("EINVAL", "FLIP fence takes no further arguments");
    req->command = CONTROL_FLIP_FENCE;
    return 0;
  }
  if (!word_is (&words[1], "forward"))
    FAIL ("EINVAL", "FLIP mode must be fence or forward");
  if (nwords < 3)
    FAIL ("EINVAL", "FLIP forward needs the NBD URI of the destination");
  if (nwords > 3)
    FAIL ("EINVAL", "FLIP forward takes only one URI");
  if (uri_argument (&words[2], req,
                    "FLIP forward URI is longer than 2047 bytes",
                    "FLIP forward URI contains a byte that is not printable ASCII",
                    errno_name, why) == -1)
    return -1;
  req->command = CONTROL_FLIP_FORWARD;
  return 0;
}

static int
parse_preconnect (const struct word *words, size_t nwords,
                  struct control_request *req,
                  const char **errno_name, const char **why)
{
  if (nwords < 2)
    FAIL ("EINVAL", "PRECONNECT needs the NBD URI of the destination");
  if (nwords > 2)
    FAIL ("EINVAL", "PRECONNECT takes only one URI");
  if (uri_argument (&words[1], req,
                    "PRECONNECT URI is longer than 2047 bytes",
                    "PRECONNECT URI contains a byte that is not printable ASCII",
                    errno_name, why) == -1)
    return -1;
  req->command = CONTROL_PRECONNECT;
  return 0;
}

/* The options after MIRROR START's size: "sync <timeout-ms>" and
 * "wait <ms>", in either order, each at most once. */
static int
parse_mirror_options (const struct word *words, size_t nwords,
                      struct control_request *req,
                      const char **errno_name, const char **why)
{
  bool have_wait = false;

  for (size_t i = 3; i < nwords; i += 2) {
    if (i + 1 == nwords)
      FAIL ("EINVAL", "MIRROR START's sync and wait each need a number of "
            "milliseconds");
    if (word_is (&words[i], "sync")) {
      if (req->mirror_sync)
        FAIL ("EINVAL", "MIRROR START takes sync at most once");
      if (number_argument (&words[i + 1], &req->sync_timeout_ms,
                           "MIRROR START sync timeout is not a decimal number",
                           "MIRROR START sync timeout does not fit in 64 bits",
                           errno_name, why) == -1)
        return -1;
      if (req->sync_timeout_ms == 0)
        FAIL ("EINVAL", "MIRROR START sync timeout must be longer than zero");
      req->mirror_sync = true;
    }
    else if (word_is (&words[i], "wait")) {
      if (have_wait)
        FAIL ("EINVAL", "MIRROR START takes wait at most once");
      /* 0 is allowed: no wait, as without the keyword. */
      if (number_argument (&words[i + 1], &req->full_wait_ms,
                           "MIRROR START wait is not a decimal number",
                           "MIRROR START wait does not fit in 64 bits",
                           errno_name, why) == -1)
        return -1;
      have_wait = true;
    }
    else
      FAIL ("EINVAL", "MIRROR START's options are sync <timeout-ms> and "
            "wait <ms>");
  }
  return 0;
}

/* MIRROR START <ring-bytes> [sync <timeout-ms>] [wait <ms>] | MIRROR STOP.
 * The ring's size and the bounds of the times are checked by the filter,
 * which knows its limits. */
static int
parse_mirror (const struct word *words, size_t nwords,
              struct control_request *req,
              const char **errno_name, const char **why)
{
  if (nwords < 2)
    FAIL ("EINVAL", "MIRROR needs START or STOP");
  if (word_is (&words[1], "STOP")) {
    if (nwords > 2)
      FAIL ("EINVAL", "MIRROR STOP takes no further arguments");
    req->command = CONTROL_MIRROR_STOP;
    return 0;
  }
  if (!word_is (&words[1], "START"))
    FAIL ("EINVAL", "MIRROR needs START or STOP");
  if (nwords < 3)
    FAIL ("EINVAL", "MIRROR START needs the ring's size in bytes");
  if (nwords > 7)
    FAIL ("EINVAL", "MIRROR START takes a size, then optionally "
          "sync <timeout-ms> and wait <ms>");
  if (number_argument (&words[2], &req->ring_bytes,
                       "MIRROR START size is not a decimal number",
                       "MIRROR START size does not fit in 64 bits",
                       errno_name, why) == -1)
    return -1;
  if (parse_mirror_options (words, nwords, req, errno_name, why) == -1)
    return -1;
  req->command = CONTROL_MIRROR_START;
  return 0;
}

/* RESET and RESUME may name the migration they are for. */
static int
parse_tagged (const struct word *words, size_t nwords, enum control_command cmd,
              struct control_request *req,
              const char **errno_name, const char **why)
{
  size_t i;

  if (nwords > 2)
    FAIL ("EINVAL", cmd == CONTROL_RESET
          ? "RESET takes at most a migration id"
          : "RESUME takes at most a migration id");
  if (nwords == 2) {
    if (words[1].len != CONTROL_MIGRATION_ID_LEN)
      FAIL ("EINVAL", "a migration id is 32 hexadecimal digits");
    for (i = 0; i < words[1].len; i++) {
      char c = words[1].p[i];
      if (c >= 'A' && c <= 'F')
        c = (char) (c - 'A' + 'a');
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
        FAIL ("EINVAL", "a migration id is 32 hexadecimal digits");
      req->migration_id[i] = c;
    }
    req->migration_id[i] = '\0';
  }
  req->command = cmd;
  return 0;
}

int
control_request_parse (const char *line, size_t len,
                       struct control_request *req,
                       const char **errno_name, const char **why)
{
  struct word words[MAX_WORDS];
  size_t nwords, i;

  assert (line != NULL || len == 0);
  assert (req != NULL && errno_name != NULL && why != NULL);
  memset (req, 0, sizeof *req);
  *errno_name = NULL;
  *why = NULL;

  /* The limit counts the newline, whether or not the caller passed it. */
  if (len > 0 && line[len - 1] == '\n')
    len--;
  if (len > CONTROL_MAX_LINE - 1)
    FAIL ("E2BIG", "request line is longer than 4096 bytes");
  if (len > 0 && line[len - 1] == '\r')
    len--;

  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char) line[i];
    if (c == '\0')
      FAIL ("EINVAL", "request contains a NUL byte");
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      FAIL ("EINVAL", "request contains a control character");
  }

  nwords = split_words (line, len, words);
  if (nwords == 0)
    FAIL ("EINVAL", "empty request");

  for (i = 0; i < sizeof plain_commands / sizeof plain_commands[0]; i++) {
    if (word_is (&words[0], plain_commands[i].word)) {
      if (nwords > 1)
        FAIL ("EINVAL", plain_commands[i].why_extra);
      req->command = plain_commands[i].command;
      return 0;
    }
  }

  if (word_is (&words[0], "CONFIRM")) {
    if (nwords < 3)
      FAIL ("EINVAL", "CONFIRM needs an offset and a length");
    if (nwords > 3)
      FAIL ("EINVAL", "CONFIRM takes only an offset and a length");
    if (number_argument (&words[1], &req->offset,
                         "CONFIRM offset is not a decimal number",
                         "CONFIRM offset does not fit in 64 bits",
                         errno_name, why) == -1 ||
        number_argument (&words[2], &req->length,
                         "CONFIRM length is not a decimal number",
                         "CONFIRM length does not fit in 64 bits",
                         errno_name, why) == -1)
      return -1;
    req->command = CONTROL_CONFIRM;
    return 0;
  }

  if (word_is (&words[0], "THROTTLE")) {
    if (nwords < 2)
      FAIL ("EINVAL", "THROTTLE needs a rate in bytes per second (0 = off)");
    if (nwords > 2)
      FAIL ("EINVAL", "THROTTLE takes only a rate in bytes per second");
    if (number_argument (&words[1], &req->bytes_per_second,
                         "THROTTLE rate is not a decimal number",
                         "THROTTLE rate does not fit in 64 bits",
                         errno_name, why) == -1)
      return -1;
    req->command = CONTROL_THROTTLE;
    return 0;
  }

  if (word_is (&words[0], "FLIP"))
    return parse_flip (words, nwords, req, errno_name, why);
  if (word_is (&words[0], "PRECONNECT"))
    return parse_preconnect (words, nwords, req, errno_name, why);
  if (word_is (&words[0], "MIRROR"))
    return parse_mirror (words, nwords, req, errno_name, why);
  if (word_is (&words[0], "RESET"))
    return parse_tagged (words, nwords, CONTROL_RESET, req, errno_name, why);
  if (word_is (&words[0], "RESUME"))
    return parse_tagged (words, nwords, CONTROL_RESUME, req, errno_name, why);

  FAIL ("EINVAL", "unknown command");
}

const char *
control_command_name (enum control_command cmd)
{
  switch (cmd) {
  case CONTROL_STATUS: return "STATUS";
  case CONTROL_SNAPSHOT: return "SNAPSHOT";
  case CONTROL_CONFIRM: return "CONFIRM";
  case CONTROL_RESUME: return "RESUME";
  case CONTROL_RESET: return "RESET";
  case CONTROL_FREEZE: return "FREEZE";
  case CONTROL_THAW: return "THAW";
  case CONTROL_FLIP_FENCE: return "FLIP fence";
  case CONTROL_FLIP_FORWARD: return "FLIP forward";
  case CONTROL_THROTTLE: return "THROTTLE";
  case CONTROL_PRECONNECT: return "PRECONNECT";
  case CONTROL_MIRROR_START: return "MIRROR START";
  case CONTROL_MIRROR_STOP: return "MIRROR STOP";
  }
  return "unknown";
}

/* Reply lines are NUL-terminated strings, possibly still carrying their
 * "\r\n" or "\n": those end the line as well. */
static bool
is_line_end (char c)
{
  return c == '\0' || c == '\r' || c == '\n';
}

/* Does line start with the word w (exact case) followed by a separator or
 * the end of the line? */
static bool
starts_with_word (const char *line, const char *w)
{
  size_t n = strlen (w);

  return strncmp (line, w, n) == 0 &&
         (is_line_end (line[n]) || is_separator (line[n]));
}

bool
control_reply_is_ok (const char *line)
{
  return line != NULL && starts_with_word (line, "OK");
}

int
control_reply_error (const char *line, const char **errno_name,
                     size_t *errno_len, const char **message)
{
  const char *p, *name;
  size_t n = 0;

  if (line == NULL || !starts_with_word (line, "ERR")) {
    errno = EINVAL;
    return -1;
  }
  p = line + 3;
  while (is_separator (*p))
    p++;
  /* Errno names are upper-case letters, digits and underscores
   * ("EINVAL", "E2BIG"); anything else means the line is not a reply. */
  name = p;
  while ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= '0' && p[n] <= '9') ||
         p[n] == '_')
    n++;
  if (n == 0 || !(is_line_end (p[n]) || is_separator (p[n]))) {
    errno = EINVAL;
    return -1;
  }
  p += n;
  while (is_separator (*p))
    p++;
  *errno_name = name;
  *errno_len = n;
  *message = p;
  return 0;
}

/* Find the value of key in the key=value words of an OK line.  The key
 * must match a whole word up to its "=", so "dirty_blocks" never matches
 * inside "undirty_blocks=" nor "dirty_blocks_total=".  Returns 0 with the
 * value's extent, or -1 with errno ENOENT or EINVAL. */
static int
find_value (const char *line, const char *key,
            const char **value, size_t *value_len)
{
  size_t keylen, i = 0;

  if (line == NULL || key == NULL || !control_reply_is_ok (line)) {
    errno = EINVAL;
    return -1;
  }
  keylen = strlen (key);
  if (keylen == 0 || strpbrk (key, "= \t\r\n") != NULL) {
    errno = EINVAL;
    return -1;
  }

  while (!is_line_end (line[i])) {
    size_t start;

    while (is_separator (line[i]))
      i++;
    start = i;
    while (!is_line_end (line[i]) && !is_separator (line[i]))
      i++;
    if (i - start > keylen && line[start + keylen] == '=' &&
        memcmp (line + start, key, keylen) == 0) {
      *value = line + start + keylen + 1;
      *value_len = i - start - keylen - 1;
      return 0;
    }
  }
  errno = ENOENT;
  return -1;
}

int
control_reply_get_u64 (const char *line, const char *key, uint64_t *value)
{
  const char *v;
  size_t n;

  if (find_value (line, key, &v, &n) == -1)
    return -1;
  /* parse_decimal sets EINVAL or ERANGE. */
  return parse_decimal (v, n, value);
}

int
control_reply_get_string (const char *line, const char *key,
                          char *value, size_t value_size)
{
  const char *v;
  size_t n;

  if (value == NULL || value_size == 0) {
    errno = EINVAL;
    return -1;
  }
  if (find_value (line, key, &v, &n) == -1)
    return -1;
  if (n >= value_size) {
    errno = ERANGE;
    return -1;
  }
  memcpy (value, v, n);
  value[n] = '\0';
  return 0;
}

int
control_parse_extent_line (const char *line, uint64_t *offset, uint64_t *length)
{
  struct word words[MAX_WORDS];
  size_t len, nwords;
  uint64_t off, n;

  if (line == NULL) {
    errno = EINVAL;
    return -1;
  }
  len = strlen (line);
  if (len > 0 && line[len - 1] == '\n')
    len--;
  if (len > 0 && line[len - 1] == '\r')
    len--;

  if (len == 1 && line[0] == '.')
    return 0;

  /* Exactly two strict decimals separated by spaces; an empty extent or
   * one that wraps around 2^64 would make the sender confirm nonsense. */
  nwords = split_words (line, len, words);
  if (nwords != 2) {
    errno = EINVAL;
    return -1;
  }
  if (parse_decimal (words[0].p, words[0].len, &off) == -1 ||
      parse_decimal (words[1].p, words[1].len, &n) == -1)
    return -1;                  /* parse_decimal set errno */
  if (n == 0) {
    errno = EINVAL;
    return -1;
  }
  if (off > UINT64_MAX - n) {
    errno = ERANGE;
    return -1;
  }
  *offset = off;
  *length = n;
  return 1;
}
