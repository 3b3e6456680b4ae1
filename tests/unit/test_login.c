/* The dashboard's login state (src/broker/login.c) with an injected clock: session tokens (64
 * hex digits, different each time, only the right one finds the session, the account comes
 * back), the idle timeout (restarted by each use) and the absolute lifetime, logout, eviction of
 * the least recently used session when the table is full, and the lockout of a peer after
 * repeated failed logins (its window, its end, other peers unaffected, a success forgets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/login.h"
#include "common/err.h"

#include <stdio.h>
#include <string.h>

static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

static login_t *new_state(void)
{
    struct login_config cfg;
    login_config_init(&cfg);
    assert_int_equal(cfg.idle_ms, 30 * 60 * 1000);
    assert_int_equal(cfg.life_ms, 12 * 3600 * 1000);
    assert_int_equal(cfg.max_failures, 5);
    cfg.now_ms = fake_clock;
    fake_now = 1000000;
    return login_new(&cfg);
}

static void test_sessions(void **state)
{
    (void)state;
    login_t *l = new_state();
    char t1[LOGIN_TOKEN_HEX + 1], t2[LOGIN_TOKEN_HEX + 1], ak[REMOTING_KEY_MAX],
        sk[REMOTING_KEY_MAX];

    assert_int_equal(login_session_new(l, "adminKey1", "adminSecret1", t1), 0);
    assert_int_equal(login_session_new(l, "adminKey2", "adminSecret2", t2), 0);
    assert_int_equal(strlen(t1), LOGIN_TOKEN_HEX);
    assert_int_equal(strspn(t1, "0123456789abcdef"), LOGIN_TOKEN_HEX);
    assert_string_not_equal(t1, t2);
    assert_int_equal(login_session_count(l), 2);

    assert_int_equal(login_session_get(l, t1, ak, sk), 0);
    assert_string_equal(ak, "adminKey1");
    assert_string_equal(sk, "adminSecret1");
    assert_int_equal(login_session_get(l, t2, ak, sk), 0);
    assert_string_equal(ak, "adminKey2");

    /* Anything but the token: another token, a changed digit, upper case, short, long, NULL. */
    char forged[LOGIN_TOKEN_HEX + 2];
    snprintf(forged, sizeof forged, "%s", t1);
    forged[10] = forged[10] == '0' ? '1' : '0';
    assert_int_equal(login_session_get(l, forged, ak, sk), FERRY_ENOTFOUND);
    for (int i = 0; i < LOGIN_TOKEN_HEX; i++)
        forged[i] = t1[i] >= 'a' ? (char)(t1[i] - 'a' + 'A') : t1[i];
    if (strcmp(forged, t1) != 0) /* (a token of digits only has no upper case) */
        assert_int_equal(login_session_get(l, forged, ak, sk), FERRY_ENOTFOUND);
    snprintf(forged, sizeof forged, "%.63s", t1);
    assert_int_equal(login_session_get(l, forged, ak, sk), FERRY_ENOTFOUND);
    snprintf(forged, sizeof forged, "%s0", t1);
    assert_int_equal(login_session_get(l, forged, ak, sk), FERRY_ENOTFOUND);
    assert_int_equal(login_session_get(l, NULL, ak, sk), FERRY_ENOTFOUND);
    assert_int_equal(login_session_get(l, "", ak, sk), FERRY_ENOTFOUND);

    /* Logout ends one session only. */
    login_session_end(l, t2);
    login_session_end(l, "garbage");
    assert_int_equal(login_session_get(l, t2, ak, sk), FERRY_ENOTFOUND);
    assert_int_equal(login_session_get(l, t1, ak, sk), 0);
    assert_int_equal(login_session_count(l), 1);

    /* Too long keys are refused. */
    char longkey[REMOTING_KEY_MAX + 1];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = 0;
    assert_int_equal(login_session_new(l, longkey, "s", t2), FERRY_EINVAL);
    login_free(l);
}

static void test_timeouts(void **state)
{
    (void)state;
    login_t *l = new_state();
    const int64_t min = 60 * 1000;
    char t[LOGIN_TOKEN_HEX + 1], ak[REMOTING_KEY_MAX], sk[REMOTING_KEY_MAX];

    /* Idle: 29 minutes between uses keep it; each use restarts the idle time. */
    assert_int_equal(login_session_new(l, "adminKey1", "adminSecret1", t), 0);
    for (int i = 0; i < 5; i++) {
        fake_now += 29 * min;
        assert_int_equal(login_session_get(l, t, ak, sk), 0);
    }
    fake_now += 30 * min; /* unused for 30 minutes: gone */
    assert_int_equal(login_session_count(l), 0);
    assert_int_equal(login_session_get(l, t, ak, sk), FERRY_ENOTFOUND);

    /* Absolute: in use every 20 minutes, it still ends 12 hours after the login. */
    int64_t start = fake_now;
    assert_int_equal(login_session_new(l, "adminKey1", "adminSecret1", t), 0);
    while (fake_now + 20 * min < start + 12 * 60 * min) {
        fake_now += 20 * min;
        assert_int_equal(login_session_get(l, t, ak, sk), 0);
    }
    fake_now = start + 12 * 60 * min - 1;
    assert_int_equal(login_session_get(l, t, ak, sk), 0);
    fake_now++;
    assert_int_equal(login_session_get(l, t, ak, sk), FERRY_ENOTFOUND);
    login_free(l);
}

static void test_eviction(void **state)
{
    (void)state;
    login_t *l = new_state();
    char t[LOGIN_SESSIONS + 1][LOGIN_TOKEN_HEX + 1], ak[REMOTING_KEY_MAX], sk[REMOTING_KEY_MAX],
        key[32];

    for (int i = 0; i < LOGIN_SESSIONS; i++) {
        fake_now += 10;
        snprintf(key, sizeof key, "admin%d", i);
        assert_int_equal(login_session_new(l, key, "secret", t[i]), 0);
    }
    assert_int_equal(login_session_count(l), LOGIN_SESSIONS);
    /* Session 0 is used again, so session 1 is the least recently used. */
    fake_now += 10;
    assert_int_equal(login_session_get(l, t[0], ak, sk), 0);
    fake_now += 10;
    assert_int_equal(login_session_new(l, "newcomer", "secret", t[LOGIN_SESSIONS]), 0);
    assert_int_equal(login_session_count(l), LOGIN_SESSIONS);
    assert_int_equal(login_session_get(l, t[1], ak, sk), FERRY_ENOTFOUND);
    for (int i = 0; i <= LOGIN_SESSIONS; i++) {
        if (i == 1)
            continue;
        assert_int_equal(login_session_get(l, t[i], ak, sk), 0);
    }
    assert_string_equal(ak, "newcomer");
    login_free(l);
}

static void test_lockout(void **state)
{
    (void)state;
    login_t *l = new_state();
    const int64_t s = 1000;

    /* Failures 20 s apart: never 5 within a minute, never locked. */
    for (int i = 0; i < 8; i++) {
        assert_int_equal(login_locked_ms(l, "10.0.0.1"), 0);
        assert_int_equal(login_failed(l, "10.0.0.1"), 0);
        fake_now += 20 * s;
    }
    fake_now += 60 * s;
    /* 5 within a minute lock the peer for a minute; other peers are free. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(login_failed(l, "10.0.0.1"), 0);
        fake_now += 10 * s;
    }
    assert_int_equal(login_failed(l, "10.0.0.1"), 60 * s);
    assert_int_equal(login_locked_ms(l, "10.0.0.1"), 60 * s);
    assert_int_equal(login_locked_ms(l, "10.0.0.2"), 0);
    fake_now += 59 * s;
    assert_int_equal(login_locked_ms(l, "10.0.0.1"), 1 * s);
    fake_now += 1 * s;
    assert_int_equal(login_locked_ms(l, "10.0.0.1"), 0);
    /* After the lockout the count starts over. */
    assert_int_equal(login_failed(l, "10.0.0.1"), 0);

    /* A success forgets the failures. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(login_failed(l, "10.0.0.3"), 0);
    login_succeeded(l, "10.0.0.3");
    for (int i = 0; i < 4; i++)
        assert_int_equal(login_failed(l, "10.0.0.3"), 0);
    assert_int_equal(login_failed(l, "10.0.0.3"), 60 * s);

    /* More peers than the table holds: the one seen longest ago is forgotten, the rest kept. */
    char peer[32];
    for (int i = 0; i < LOGIN_PEERS + 8; i++) {
        fake_now += 1;
        snprintf(peer, sizeof peer, "192.168.0.%d", i);
        for (int k = 0; k < 5; k++)
            login_failed(l, peer);
    }
    snprintf(peer, sizeof peer, "192.168.0.%d", LOGIN_PEERS + 7);
    assert_true(login_locked_ms(l, peer) > 0);
    assert_int_equal(login_locked_ms(l, "192.168.0.0"), 0);
    login_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_lockout),
    };
    return cmocka_run_group_tests_name("login", tests, NULL, NULL);
}
