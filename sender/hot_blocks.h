/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: deferring hot blocks to the final pass.
 *
 * A block the guest rewrites all the time is sent again in every pass,
 * and each copy is stale by the next.  A block that was dirty in each of
 * the last HOT_BLOCKS_HISTORY snapshots (the full pass does not count:
 * every block is dirty for it) is "hot": it is left out of the passes and sent once, in
 * the final pass, as long as the deferred blocks together fit a byte
 * budget the caller derives from the downtime budget.
 *
 * Nothing is lost by leaving a block out.  SNAPSHOT moved it into the
 * filter's unconfirmed set; a block that is never sent is never covered by
 * a SYNC and so never CONFIRMed, and stays unconfirmed however often the
 * guest writes it again.  Before the final snapshot the sender sends
 * RESUME (frozen, with every earlier pass confirmed, so the only
 * unconfirmed blocks are the deferred ones), which makes them dirty again,
 * and the final pass carries them.  A sender that dies meanwhile leaves
 * them unconfirmed, and the next one's RESUME does the same.
 *
 * Pure list arithmetic on sorted, coalesced extent lists (as SNAPSHOT
 * returns them), with no I/O, so the unit tests reach it directly.
 */
#ifndef STM_SENDER_HOT_BLOCKS_H
#define STM_SENDER_HOT_BLOCKS_H

#include <stdbool.h>
#include <stdint.h>

#include "extents.h"

/* Snapshots a block must be dirty in, in a row, to be hot.  Three keeps
 * scattered writes (which land in two snapshots in a row by chance often
 * enough) from passing for hot. */
#define HOT_BLOCKS_HISTORY 3

struct hot_blocks {
  /* The last HOT_BLOCKS_HISTORY - 1 snapshots after the full pass, as
   * handed out, newest first; history says how many are held. */
  struct extent_list prev[HOT_BLOCKS_HISTORY - 1];
  unsigned history;
  struct extent_list deferred;   /* left out so far, for the final pass */
};

#define HOT_BLOCKS_INIT { .history = 0 }

void hot_blocks_free (struct hot_blocks *h);

/* Bytes deferred so far. */
uint64_t hot_blocks_deferred_bytes (const struct hot_blocks *h);

/* Forget what is deferred (after RESUME made those blocks dirty again). */
void hot_blocks_forget_deferred (struct hot_blocks *h);

/* pass holds a fresh snapshot; full says whether it is the full pass.
 * Remember it, add the blocks that were also in the previous
 * HOT_BLOCKS_HISTORY - 1 snapshots to the deferred set while it stays
 * within budget_bytes (whole blocks of block bytes), and take every
 * deferred block out of pass, which is then what to send.  Returns -1
 * (errno ENOMEM) with pass unchanged. */
int hot_blocks_filter (struct hot_blocks *h, struct extent_list *pass,
                       bool full, uint64_t budget_bytes, uint32_t block);

/* List arithmetic on sorted, non-overlapping lists, for the above and the
 * tests: out (cleared first) = a ∩ b, or a − b.  -1 on ENOMEM. */
int hot_blocks_intersect (const struct extent_list *a, const struct extent_list *b,
                          struct extent_list *out);
int hot_blocks_subtract (const struct extent_list *a, const struct extent_list *b,
                         struct extent_list *out);

#endif /* STM_SENDER_HOT_BLOCKS_H */
