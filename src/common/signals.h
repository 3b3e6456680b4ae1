/* Shutdown signals for the server binaries: SIGINT and SIGTERM are blocked in every thread and
 * taken with sigwait() by main, so no handler ever runs in signal context; SIGPIPE is ignored
 * (a peer that went away is an EPIPE on its socket, not a kill). */
#ifndef FERRY_COMMON_SIGNALS_H
#define FERRY_COMMON_SIGNALS_H

/* Call before any thread starts, so every thread inherits the mask. */
void signals_block_shutdown(void);
/* Wait for SIGINT or SIGTERM; returns "SIGINT" or "SIGTERM". */
const char *signals_wait_shutdown(void);

#endif
