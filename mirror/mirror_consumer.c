/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: the consumer's side of the mirror ring (see mirror_consumer.h). */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/futex.h>

#include "mirror_consumer.h"
#include "mirror_ring.h"
#include "mirror_wait.h"

int
mirror_consumer_map (struct mirror_consumer *c, int area_fd, int page_fd,
                     int event_fd)
{
  struct stat sb;
  int saved;

  memset (c, 0, sizeof *c);
  c->area_fd = area_fd;
  c->page_fd = page_fd;
  c->event_fd = event_fd;
  c->area = MAP_FAILED;
  c->page = MAP_FAILED;

  if (fstat (area_fd, &sb) == -1)
    goto fail;
  if (sb.st_size < (off_t) MIRROR_HEADER_PAGE) {
    errno = EINVAL;
    goto fail;
  }
  c->area_size = (uint64_t) sb.st_size;
  /* Read-only: the filter has sealed the area against writable mappings. */
  c->area = mmap (NULL, c->area_size, PROT_READ, MAP_SHARED, area_fd, 0);
  if (c->area == MAP_FAILED)
    goto fail;
  c->page = mmap (NULL, sizeof *c->page, PROT_READ | PROT_WRITE, MAP_SHARED,
                  page_fd, 0);
  if (c->page == MAP_FAILED)
    goto fail;
  if (mirror_ring_attach (&c->ring, c->area, c->area_size, c->page) == -1)
    goto fail;
  /* Start where the filter's consumer page says (a fresh ring: 0). */
  c->next_pos = __atomic_load_n (&c->page->consumed, __ATOMIC_ACQUIRE);
  c->taken_entries = c->page->consumed_entries;
  return 0;

 fail:
  saved = errno;
  mirror_consumer_unmap (c);
  errno = saved;
  return -1;
}

void
mirror_consumer_unmap (struct mirror_consumer *c)
{
  if (c->area != MAP_FAILED && c->area != NULL)
    munmap (c->area, c->area_size);
  if (c->page != MAP_FAILED && c->page != NULL)
    munmap (c->page, sizeof *c->page);
  c->area = c->page = NULL;
  if (c->area_fd >= 0)
    close (c->area_fd);
  if (c->page_fd >= 0)
    close (c->page_fd);
  if (c->event_fd >= 0)
    close (c->event_fd);
  c->area_fd = c->page_fd = c->event_fd = -1;
}

int
mirror_consumer_next (struct mirror_consumer *c, struct mirror_entry *e)
{
  int r = mirror_ring_peek (&c->ring, c->next_pos, e);

  if (r == 1) {
    c->next_pos = e->end;
    c->taken_entries++;
  }
  return r;
}

void
mirror_consumer_taken (struct mirror_consumer *c, uint64_t pos,
                       uint64_t entries)
{
  c->page->consumed_entries = entries;
  __atomic_store_n (&c->page->consumed, pos, __ATOMIC_RELEASE);
}

void
mirror_consumer_durable (struct mirror_consumer *c, uint64_t pos,
                         uint64_t entries)
{
  c->page->durable_entries = entries;
  /* Release: the consumer has finished reading the records below pos
   * before a writer may overwrite them. */
  __atomic_store_n (&c->page->durable, pos, __ATOMIC_RELEASE);
  /* Only mirror-sync writers and writers waiting for room wait for it:
   * a consumer of a ring with neither makes no system call here. */
  if (mirror_ring_durable_wake_needed (&c->ring))
    mirror_wait_wake_all (&c->ring);
}

void
mirror_consumer_set_window (struct mirror_consumer *c, uint64_t bytes)
{
  uint64_t old = __atomic_exchange_n (&c->page->window, bytes, __ATOMIC_RELEASE);

  if ((bytes == 0 || bytes > old) && old != 0 &&
      mirror_ring_durable_wake_needed (&c->ring))
    mirror_wait_wake_all (&c->ring);
}

uint64_t
mirror_consumer_clock (const struct mirror_consumer *c)
{
  return mirror_ring_head (&c->ring);
}

bool
mirror_consumer_stopped (const struct mirror_consumer *c)
{
  return __atomic_load_n (&c->ring.hdr->stopped, __ATOMIC_ACQUIRE) != 0;
}

int
mirror_consumer_arm (struct mirror_consumer *c)
{
  struct mirror_entry e;
  int r;

  /* Say we sleep, then look again: a writer that committed before seeing
   * the flag left a record we find now; one after it signals. */
  __atomic_store_n (&c->page->sleeping, 1, __ATOMIC_SEQ_CST);
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
  r = mirror_ring_peek (&c->ring, c->next_pos, &e);
  if (r != 0 || mirror_consumer_stopped (c)) {
    __atomic_store_n (&c->page->sleeping, 0, __ATOMIC_RELAXED);
    return r == -1 ? -1 : 1;
  }
  return 0;
}

int
mirror_consumer_event_fd (const struct mirror_consumer *c)
{
  return c->event_fd;
}

int
mirror_consumer_woken (struct mirror_consumer *c)
{
  uint64_t count;

  __atomic_store_n (&c->page->sleeping, 0, __ATOMIC_RELAXED);
  if (read (c->event_fd, &count, sizeof count) == -1 && errno != EAGAIN)
    return -1;
  return 0;
}

int
mirror_consumer_wait (struct mirror_consumer *c, int timeout_ms)
{
  struct pollfd pfd = { .fd = c->event_fd, .events = POLLIN };
  int r = mirror_consumer_arm (c);

  if (r != 0)
    return r;
  r = poll (&pfd, 1, timeout_ms);
  if (r <= 0) {
    __atomic_store_n (&c->page->sleeping, 0, __ATOMIC_RELAXED);
    return r;
  }
  return mirror_consumer_woken (c) == -1 ? -1 : 1;
}
