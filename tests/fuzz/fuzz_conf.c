/* libFuzzer entry point for the config parser (src/common/conf.c) with the real tables: the
 * input is written to a file (a memfd) and loaded as ferrymq loads its file (name server keys with
 * the prefix `namesrv.`, then the broker's, then the store's), and alone as broker.conf
 * (broker_config_load). A file that loads is then checked (broker_config_check: names,
 * namesrvAddr, messageDelayLevel, addresses) and printed; every value printed must load
 * again to the same printed configuration. Errors must come with a message. */
#include "broker/broker.h"
#include "common/conf.h"
#include "common/err.h"
#include "common/log.h"
#include "namesrv/namesrv.h"
#include "store/store.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void die(const char *what)
{
    fprintf(stderr, "fuzz_conf: %s\n", what);
    abort();
}

/* The config file: a memfd, named by its /proc/self/fd path (nothing is left behind). */
static char g_path[64];
static int g_fd = -1;

static void write_file(const void *p, size_t n)
{
    if (ftruncate(g_fd, 0) != 0 || (n && pwrite(g_fd, p, n, 0) != (ssize_t)n))
        die("cannot write the config file");
}

/* The printed broker + store configuration (malloc'd). */
static char *print_broker(const struct broker_config *cfg, size_t *len)
{
    char *out = NULL;
    FILE *f = open_memstream(&out, len);
    if (!f)
        die("open_memstream");
    broker_config_print(cfg, f);
    fclose(f);
    return out;
}

static void load_broker(void)
{
    static struct broker_config cfg, again;
    char err[512] = "";
    broker_config_defaults(&cfg);
    int rc = broker_config_load(&cfg, g_path, err, sizeof err);
    if (rc != 0) {
        if (rc != FERRY_ECONFIG || !err[0])
            die("broker_config_load: unexpected failure");
        return;
    }
    err[0] = 0;
    rc = broker_config_check(&cfg, err, sizeof err);
    if (rc != 0 && (rc != FERRY_ECONFIG || !err[0]))
        die("broker_config_check: unexpected failure");
    /* What is printed loads again to the same configuration. */
    size_t len1, len2;
    char *p1 = print_broker(&cfg, &len1);
    write_file(p1, len1);
    broker_config_defaults(&again);
    if (broker_config_load(&again, g_path, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_conf: %s\n", err);
        die("the printed configuration does not load");
    }
    char *p2 = print_broker(&again, &len2);
    if (len1 != len2 || memcmp(p1, p2, len1) != 0)
        die("the printed configuration loads differently");
    free(p1);
    free(p2);
}

static void load_standalone(void)
{
    static struct namesrv_config nsc;
    static struct broker_config bc;
    namesrv_config_defaults(&nsc);
    broker_config_defaults(&bc);
    struct conf_target t[3] = {
        {namesrv_conf_defs, &nsc, "namesrv."},
        {broker_conf_defs, &bc, NULL},
        {store_conf_defs, &bc.store, NULL},
    };
    char err[512] = "";
    int rc = conf_load_targets(g_path, t, 3, err, sizeof err);
    if (rc != 0 && (rc != FERRY_ECONFIG || !err[0]))
        die("conf_load_targets: unexpected failure");
    if (rc == 0) {
        FILE *f = fopen("/dev/null", "w");
        if (!f)
            die("/dev/null");
        conf_print(namesrv_conf_defs, &nsc, f);
        fclose(f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    log_min_level = LOG_LEVEL_ERROR; /* unknown keys are warnings */
    if (g_fd < 0) {
        g_fd = memfd_create("fuzz_conf.properties", 0);
        if (g_fd < 0)
            die("memfd_create");
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", g_fd);
    }
    write_file(data, size);
    load_standalone();
    write_file(data, size);
    load_broker();
    return 0;
}
