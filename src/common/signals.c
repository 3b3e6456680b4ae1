/* Blocking and waiting for the shutdown signals (see signals.h). */
#include "common/signals.h"

#include <pthread.h>
#include <signal.h>

static void shutdown_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void signals_block_shutdown(void)
{
    sigset_t set;
    shutdown_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

const char *signals_wait_shutdown(void)
{
    sigset_t set;
    int sig = 0;
    shutdown_set(&set);
    while (sigwait(&set, &sig) != 0)
        ;
    return sig == SIGINT ? "SIGINT" : "SIGTERM";
}
