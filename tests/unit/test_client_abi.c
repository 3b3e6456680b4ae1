/* ferry.h on its own, as an application sees it: its error values, for test_client_unit to
 * compare with the library's internal table (src/common/err.h). */
#include "ferry/ferry.h"

const int client_abi_errs[] = {FERRY_ETOOBIG,    FERRY_EINVAL,   FERRY_ECONFIG,
                               FERRY_ENOTFOUND,  FERRY_EPROTO,   FERRY_EUNKNOWN,
                               FERRY_ENOTSTORED, FERRY_ENOROUTE, FERRY_ESHUTDOWN};
