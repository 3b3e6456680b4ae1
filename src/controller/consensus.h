/* Consensus behind a small interface of ours, so that the Raft library could be replaced:
 * start a node of a fixed group of peers, propose an entry, have committed entries applied in
 * log order by a callback, ask who leads. Implemented with canonical raft (libraft, its libuv
 * I/O backend raft_uv and the TCP transport raft_uv_tcp) on a thread of its own.
 *
 * Threads: apply, snapshot, restore, tick and done callbacks all run on the consensus thread,
 * one at a time. consensus_propose(), consensus_is_leader() and consensus_leader() may be
 * called from any thread. */
#ifndef FERRY_CONTROLLER_CONSENSUS_H
#define FERRY_CONTROLLER_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>

typedef struct consensus consensus_t;

#define CONSENSUS_PEERS_MAX 9

struct consensus_peer {
    uint64_t id;   /* > 0, unique */
    char addr[64]; /* "ip:port" of its Raft transport */
};

struct consensus_config {
    const struct consensus_peer *peers; /* the whole group, this node included */
    int n_peers;
    uint64_t self_id;
    const char *dir;               /* log and snapshots; created when missing */
    unsigned election_timeout_ms;  /* 0: 1000 */
    unsigned heartbeat_timeout_ms; /* 0: 100 */
    unsigned snapshot_threshold;   /* entries between snapshots; 0: 1024 */
    unsigned tick_ms;              /* period of @tick; 0: 100 */
    /* Apply a committed entry; returns a result handed to the proposer's done callback (on
     * this node only), valid only until the next apply. */
    void *(*apply)(void *arg, const void *data, size_t len);
    /* The whole state (ferry_malloc'd; taken over), and back. */
    int (*snapshot)(void *arg, void **data, size_t *len);
    int (*restore)(void *arg, const void *data, size_t len);
    /* Called every tick_ms, e.g. for timers of the application (@c: this node). */
    void (*tick)(consensus_t *c, void *arg);
    void *arg;
};

/* Start the node (bootstraps the group on first start, else recovers from @dir). Returns 0 or
 * an error with a message in @err. */
int consensus_start(const struct consensus_config *cfg, consensus_t **out, char *err,
                    size_t errlen);

/* Called once per proposal: @status 0 when the entry was committed and applied (then @result
 * is what apply returned), CONSENSUS_NOT_LEADER when this node is not (or stopped being) the
 * leader before the entry committed, CONSENSUS_SHUTDOWN, or another non-zero failure. */
typedef void (*consensus_done_fn)(int status, void *result, void *arg);
#define CONSENSUS_NOT_LEADER (-1)
#define CONSENSUS_SHUTDOWN   (-2)
#define CONSENSUS_FAILED     (-3)

/* Propose @data (copied). @done is always called later, exactly once, on the consensus thread. */
void consensus_propose(consensus_t *c, const void *data, size_t len, consensus_done_fn done,
                       void *arg);

int consensus_is_leader(consensus_t *c);
/* The leader's id (0: none known) and, when @addr is not NULL, its Raft address. */
uint64_t consensus_leader(consensus_t *c, char *addr, size_t cap);

/* Stop the node (pending proposals get CONSENSUS_SHUTDOWN) and free it. NULL is a no-op. */
void consensus_stop(consensus_t *c);

#endif
