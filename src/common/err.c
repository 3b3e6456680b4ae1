/* ferry_strerror(): text for project codes and -errno values. */
#include "common/err.h"

#include <string.h>

const char *ferry_strerror(int rc)
{
    switch (rc) {
#define FERRY_ERR_CASE(name, val, text)                                                            \
    case FERRY_##name:                                                                             \
        return text;
        FERRY_ERRORS(FERRY_ERR_CASE)
#undef FERRY_ERR_CASE
    case 0:
        return "success";
    default:
        break;
    }
    if (rc < 0 && rc > -4096)
        return strerror(-rc);
    return "unknown error";
}
