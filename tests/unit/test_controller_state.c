/* The controller's state machine (src/controller/state.c) on its own: broker ids, the first
 * master, sync state set changes fenced by masterEpoch and syncStateSetEpoch, elections only
 * from alive members of the sync state set (highest max offset first) unless unclean election
 * is on, the master cleared and its epoch bumped when nobody may replace it, malformed
 * commands refused without a change, and snapshots that restore the same state (and refuse a
 * damaged one). Also the peers parser of mqcontroller's config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "common/err.h"
#include "controller/codes.h"
#include "controller/controller.h"
#include "controller/state.h"

#include <stdio.h>
#include <string.h>

static const struct ctl_result *run(struct ctl_state *st, const char *cmd)
{
    return ctl_state_apply(st, cmd, strlen(cmd));
}

static void expect(struct ctl_state *st, const char *cmd, int code)
{
    const struct ctl_result *r = run(st, cmd);
    if (r->code != code)
        fail_msg("%s: code %d (%s), expected %d", cmd, r->code, r->remark, code);
}

/* bs1: ids 1, 2, 3 applied and registered; 1 is master; sync state set {1,2,3}. */
static void three(struct ctl_state *st)
{
    ctl_state_init(st);
    expect(st, "APPLY c1 bs1 1 127.0.0.1:10911", CTL_RESP_SUCCESS);
    expect(st, "APPLY c1 bs1 2 127.0.0.1:10921", CTL_RESP_SUCCESS);
    expect(st, "APPLY c1 bs1 3 127.0.0.1:10931", CTL_RESP_SUCCESS);
    expect(st, "REG c1 bs1 1 127.0.0.1:10911", CTL_RESP_SUCCESS);
    expect(st, "REG c1 bs1 2 127.0.0.1:10921", CTL_RESP_SUCCESS);
    expect(st, "REG c1 bs1 3 127.0.0.1:10931", CTL_RESP_SUCCESS);
    struct ctl_set *s = ctl_state_find(st, "bs1");
    assert_non_null(s);
    assert_int_equal(s->master_id, 1);
    assert_int_equal(s->master_epoch, 1);
    assert_int_equal(s->ss_epoch, 1);
    expect(st, "ALTER bs1 1 1 1 3 1 2 3", CTL_RESP_SUCCESS);
    assert_int_equal(s->ss_epoch, 2);
    assert_int_equal(s->n_ss, 3);
}

static void ids_and_first_master(void **state)
{
    struct ctl_state st;
    ctl_state_init(&st);
    expect(&st, "REG c1 bs1 1 127.0.0.1:10911", CTL_RESP_BROKER_NEED_TO_BE_REGISTERED);
    expect(&st, "APPLY c1 bs1 0 127.0.0.1:10911", CTL_RESP_BROKER_ID_INVALID);
    expect(&st, "APPLY c1 bs1 1 127.0.0.1:10911", CTL_RESP_SUCCESS);
    expect(&st, "APPLY c1 bs1 1 127.0.0.1:10911", CTL_RESP_SUCCESS);          /* idempotent */
    expect(&st, "APPLY c1 bs1 1 127.0.0.1:9999", CTL_RESP_BROKER_ID_INVALID); /* taken */
    expect(&st, "APPLY c2 bs1 2 127.0.0.1:10921", CTL_RESP_INVALID_REQUEST);  /* other cluster */
    expect(&st, "APPLY c1 bs1 2 127.0.0.1:10921", CTL_RESP_SUCCESS);
    /* The first registered broker of a set that never had a master becomes master. */
    const struct ctl_result *r = run(&st, "REG c1 bs1 2 127.0.0.1:10921");
    assert_int_equal(r->code, CTL_RESP_SUCCESS);
    assert_int_equal(r->master_id, 2);
    assert_string_equal(r->master_addr, "127.0.0.1:10921");
    assert_int_equal(r->master_epoch, 1);
    r = run(&st, "REG c1 bs1 1 127.0.0.1:10911");
    assert_int_equal(r->master_id, 2);
    assert_int_equal(r->master_epoch, 1);
    struct ctl_set *s = ctl_state_find(&st, "bs1");
    assert_int_equal(s->n_ss, 1);
    assert_false(ctl_set_in_sync(s, 1));
    ctl_state_free(&st);
}

static void alter_is_fenced(void **state)
{
    struct ctl_state st;
    three(&st);
    struct ctl_set *s = ctl_state_find(&st, "bs1");
    /* Stale masterEpoch (a fenced master), wrong master, stale syncStateSetEpoch. */
    expect(&st, "ALTER bs1 1 0 2 2 1 2", CTL_RESP_FENCED_MASTER_EPOCH);
    expect(&st, "ALTER bs1 2 1 2 2 1 2", CTL_RESP_INVALID_MASTER);
    expect(&st, "ALTER bs1 1 1 1 2 1 2", CTL_RESP_FENCED_SYNC_STATE_SET_EPOCH);
    /* The set must hold the master, known replicas, no duplicates. */
    expect(&st, "ALTER bs1 1 1 2 2 2 3", CTL_RESP_INVALID_REPLICAS);
    expect(&st, "ALTER bs1 1 1 2 2 1 9", CTL_RESP_INVALID_REPLICAS);
    expect(&st, "ALTER bs1 1 1 2 3 1 2 2", CTL_RESP_INVALID_REPLICAS);
    expect(&st, "ALTER bsX 1 1 2 1 1", CTL_RESP_BROKER_METADATA_NOT_EXIST);
    assert_int_equal(s->ss_epoch, 2);
    assert_int_equal(s->n_ss, 3);
    /* Shrink: 3 fell behind. */
    expect(&st, "ALTER bs1 1 1 2 2 1 2", CTL_RESP_SUCCESS);
    assert_int_equal(s->ss_epoch, 3);
    assert_false(ctl_set_in_sync(s, 3));
    /* After an election the old master's alter is refused by its epoch. */
    expect(&st, "ELECT bs1 0 0 3 1 0 500 1 2 1 400 1 3 1 900 1", CTL_RESP_SUCCESS);
    assert_int_equal(s->master_id, 2);
    expect(&st, "ALTER bs1 1 1 4 2 1 3", CTL_RESP_FENCED_MASTER_EPOCH);
    ctl_state_free(&st);
}

static void election_only_from_sync_set(void **state)
{
    struct ctl_state st;
    three(&st);
    struct ctl_set *s = ctl_state_find(&st, "bs1");
    /* The master is alive: nothing changes. */
    expect(&st, "ELECT bs1 0 0 3 1 1 100 1 2 1 90 1 3 1 80 1", CTL_RESP_MASTER_STILL_EXIST);
    assert_int_equal(s->master_id, 1);
    assert_int_equal(s->master_epoch, 1);
    /* Shrink to {1,2}; the master dies; 3 has the highest offset but is out of the set. */
    expect(&st, "ALTER bs1 1 1 2 2 1 2", CTL_RESP_SUCCESS);
    const struct ctl_result *r = run(&st, "ELECT bs1 0 0 3 1 0 100 1 2 1 90 1 3 1 999 1");
    assert_int_equal(r->code, CTL_RESP_SUCCESS);
    assert_int_equal(r->master_id, 2);
    assert_string_equal(r->master_addr, "127.0.0.1:10921");
    assert_int_equal(r->master_epoch, 2); /* bumped */
    assert_int_equal(r->ss_epoch, 4);     /* the set is now {2} */
    assert_int_equal(s->n_ss, 1);
    assert_int_equal(s->ss[0], 2);
    assert_int_equal(ctl_set_replica(s, 3)->max_offset, 999); /* reports are recorded */
    ctl_state_free(&st);
}

static void highest_offset_wins(void **state)
{
    struct ctl_state st;
    three(&st);
    const struct ctl_result *r = run(&st, "ELECT bs1 0 0 3 1 0 100 1 2 1 90 1 3 1 95 1");
    assert_int_equal(r->code, CTL_RESP_SUCCESS);
    assert_int_equal(r->master_id, 3);
    ctl_state_free(&st);
    three(&st); /* a tie goes to the lowest id */
    r = run(&st, "ELECT bs1 0 0 3 1 0 100 1 2 1 95 1 3 1 95 1");
    assert_int_equal(r->master_id, 2);
    ctl_state_free(&st);
}

static void no_candidate_fences_master(void **state)
{
    struct ctl_state st;
    three(&st);
    struct ctl_set *s = ctl_state_find(&st, "bs1");
    expect(&st, "ALTER bs1 1 1 2 1 1", CTL_RESP_SUCCESS); /* set {1} */
    /* Master dead, 2 and 3 alive but out of the set, unclean off: no master, epoch bumped. */
    expect(&st, "ELECT bs1 0 0 3 1 0 100 1 2 1 90 1 3 1 80 1", CTL_RESP_MASTER_NOT_AVAILABLE);
    assert_int_equal(s->master_id, 0);
    assert_int_equal(s->master_epoch, 2);
    assert_true(ctl_set_in_sync(s, 1)); /* the set is kept for when 1 returns */
    expect(&st, "ALTER bs1 1 1 3 1 1", CTL_RESP_FENCED_MASTER_EPOCH);
    /* Again: nothing to change, no further bump. */
    expect(&st, "ELECT bs1 0 0 3 1 0 100 1 2 1 90 1 3 1 80 1", CTL_RESP_MASTER_NOT_AVAILABLE);
    assert_int_equal(s->master_epoch, 2);
    /* 1 comes back (it is in the set): it registers and is master again, epoch 3. */
    const struct ctl_result *r = run(&st, "REG c1 bs1 1 127.0.0.1:10911");
    assert_int_equal(r->master_id, 1);
    assert_int_equal(r->master_epoch, 3);
    ctl_state_free(&st);
}

static void unclean_and_designated(void **state)
{
    struct ctl_state st;
    three(&st);
    struct ctl_set *s = ctl_state_find(&st, "bs1");
    expect(&st, "ALTER bs1 1 1 2 1 1", CTL_RESP_SUCCESS);
    /* Unclean on: the best alive replica outside the set. */
    const struct ctl_result *r = run(&st, "ELECT bs1 0 1 3 1 0 100 1 2 1 90 1 3 1 80 1");
    assert_int_equal(r->code, CTL_RESP_SUCCESS);
    assert_int_equal(r->master_id, 2);
    /* Designated: must be alive and in the set (2 is the master, 3 is not in the set). */
    expect(&st, "ELECT bs1 3 0 3 1 0 0 0 2 1 0 0 3 1 0 0", CTL_RESP_ELECT_MASTER_FAILED);
    expect(&st, "ELECT bs1 3 0 3 1 0 0 0 2 1 0 0 3 0 0 0", CTL_RESP_BROKER_NOT_ALIVE);
    expect(&st, "ELECT bs1 2 0 3 1 0 0 0 2 1 0 0 3 1 0 0", CTL_RESP_MASTER_STILL_EXIST);
    expect(&st, "ALTER bs1 2 2 4 2 2 3", CTL_RESP_SUCCESS);
    r = run(&st, "ELECT bs1 3 0 3 1 0 0 0 2 1 0 0 3 1 0 0");
    assert_int_equal(r->code, CTL_RESP_SUCCESS);
    assert_int_equal(s->master_id, 3);
    assert_int_equal(s->master_epoch, 3);
    ctl_state_free(&st);
}

static void malformed_commands(void **state)
{
    struct ctl_state st;
    three(&st);
    char *before, *after;
    size_t bl, al;
    before = ctl_state_dump(&st, &bl);
    const char *bad[] = {"",
                         "NOPE",
                         "APPLY c1 bs1",
                         "APPLY c1 bs1 x 1.2.3.4:5",
                         "ALTER bs1 1 1 2 3 1 2",
                         "ALTER bs1 1 1 2 99 1",
                         "ELECT bs1 0 0 2 1 0 1",
                         "ELECT bs1 0 0 1 1 0 1 1 extra",
                         "NODE 99 1.2.3.4:5",
                         "REG c1 bs1 1 127.0.0.1:10911 extra"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const struct ctl_result *r = ctl_state_apply(&st, bad[i], strlen(bad[i]));
        if (r->code != CTL_RESP_INVALID_REQUEST)
            fail_msg("'%s' gave %d", bad[i], r->code);
    }
    assert_int_equal(ctl_state_apply(&st, "APPLY\0x", 7)->code, CTL_RESP_INVALID_REQUEST);
    after = ctl_state_dump(&st, &al);
    assert_int_equal(bl, al);
    assert_memory_equal(before, after, bl);
    ferry_free(before);
    ferry_free(after);
    ctl_state_free(&st);
}

static void snapshot_roundtrip(void **state)
{
    struct ctl_state st, st2;
    three(&st);
    expect(&st, "NODE 1 127.0.0.1:9881", CTL_RESP_SUCCESS);
    expect(&st, "ELECT bs1 0 0 3 1 0 100 7 2 1 90 7 3 1 95 7", CTL_RESP_SUCCESS);
    expect(&st, "APPLY c1 bs2 5 127.0.0.1:20911", CTL_RESP_SUCCESS);
    size_t len, len2;
    char *dump = ctl_state_dump(&st, &len);
    ctl_state_init(&st2);
    assert_int_equal(ctl_state_restore(&st2, dump, len), 0);
    char *dump2 = ctl_state_dump(&st2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(dump, dump2, len);
    assert_string_equal(st2.node_addr[1], "127.0.0.1:9881");
    struct ctl_set *s = ctl_state_find(&st2, "bs1");
    assert_int_equal(s->master_id, 3);
    assert_int_equal(s->master_epoch, 2);
    assert_int_equal(ctl_set_replica(s, 2)->max_offset, 90);
    /* The restored state goes on like the original. */
    expect(&st2, "ALTER bs1 3 2 3 2 3 2", CTL_RESP_SUCCESS);
    /* Damaged snapshots are refused and leave an empty state. */
    dump[len - 3] = 'x';
    assert_int_equal(ctl_state_restore(&st2, dump, len), FERRY_ECORRUPT);
    assert_int_equal(st2.n_sets, 0);
    assert_int_equal(ctl_state_restore(&st2, "FERRYCTL 2\n", 11), FERRY_ECORRUPT);
    ferry_free(dump);
    ferry_free(dump2);
    ctl_state_free(&st);
    ctl_state_free(&st2);
}

static void peers_config(void **state)
{
    struct controller_config cfg;
    struct consensus_peer peers[CONSENSUS_PEERS_MAX];
    char names[CONSENSUS_PEERS_MAX][32], err[256];
    int n, self;
    controller_config_defaults(&cfg);
    snprintf(cfg.controllerPeers, sizeof cfg.controllerPeers,
             "n0-127.0.0.1:9878;n1-127.0.0.1:9868;n2-127.0.0.1:9858");
    snprintf(cfg.controllerSelfId, sizeof cfg.controllerSelfId, "n1");
    assert_int_equal(controller_parse_peers(&cfg, peers, names, &n, &self, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(self, 1);
    assert_int_equal(peers[2].id, 3);
    assert_string_equal(peers[2].addr, "127.0.0.1:9858");
    snprintf(cfg.controllerSelfId, sizeof cfg.controllerSelfId, "n7");
    assert_int_equal(controller_parse_peers(&cfg, peers, names, &n, &self, err, sizeof err),
                     FERRY_ECONFIG);
    assert_non_null(strstr(err, "controllerSelfId"));
    snprintf(cfg.controllerSelfId, sizeof cfg.controllerSelfId, "n0");
    const char *bad[] = {"",
                         "n0",
                         "n0-127.0.0.1",
                         "n0-127.0.0.1:0",
                         "-127.0.0.1:1",
                         "n0-127.0.0.1:1;n0-127.0.0.1:2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cfg.controllerPeers, sizeof cfg.controllerPeers, "%s", bad[i]);
        assert_int_equal(controller_parse_peers(&cfg, peers, names, &n, &self, err, sizeof err),
                         FERRY_ECONFIG);
        if (!strstr(err, "controllerPeers"))
            fail_msg("'%s': %s", bad[i], err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ids_and_first_master),
        cmocka_unit_test(alter_is_fenced),
        cmocka_unit_test(election_only_from_sync_set),
        cmocka_unit_test(highest_offset_wins),
        cmocka_unit_test(no_candidate_fences_master),
        cmocka_unit_test(unclean_and_designated),
        cmocka_unit_test(malformed_commands),
        cmocka_unit_test(snapshot_roundtrip),
        cmocka_unit_test(peers_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
