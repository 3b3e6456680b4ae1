/* FerryMQ error codes: 0 is success, a negative -errno is a system error, and the
 * project's own codes below sit far outside errno's range. One X-macro table builds both
 * the enum and ferry_strerror(). Wire response codes are a separate set (remoting). */
#ifndef FERRY_COMMON_ERR_H
#define FERRY_COMMON_ERR_H

#define FERRY_ERRORS(X)                                                                            \
    X(ECORRUPT, -10001, "data on disk is corrupt")                                                 \
    X(EFENCED, -10002, "store is fenced after an I/O error; restart to recover")                   \
    X(ETOOBIG, -10003, "message is larger than maxMessageSize")                                    \
    X(EDISKFULL, -10004, "disk is full; writes are refused until space returns")                   \
    X(ETIMEDOUT, -10005, "timed out waiting for the flush")                                        \
    X(EINVAL, -10006, "invalid argument")                                                          \
    X(ECONFIG, -10007, "invalid configuration")                                                    \
    X(ENOTFOUND, -10008, "not found")                                                              \
    X(ECLOSED, -10009, "store is shut down")                                                       \
    X(EPROTO, -10010, "protocol error")                                                            \
    X(ELOCKED, -10011, "store directory is locked by another process")                             \
    X(EUNKNOWN, -10012, "outcome unknown: sent, but no answer (the message may be stored)")        \
    X(ENOTSTORED, -10013, "the broker refused the message (not stored)")                           \
    X(ENOROUTE, -10014, "no route for the topic")                                                  \
    X(ESHUTDOWN, -10015, "not started or shut down")

enum ferry_err {
#define FERRY_ERR_ENUM(name, val, text) FERRY_##name = (val),
    FERRY_ERRORS(FERRY_ERR_ENUM)
#undef FERRY_ERR_ENUM
};

/* A static, human-readable text for @rc (a FERRY_E* code or a -errno). */
const char *ferry_strerror(int rc);

#endif
