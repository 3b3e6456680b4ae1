/* The dashboard's files (index.html, app.js, app.css, ... of this directory), embedded in the
 * binary at build time: cmake/embed.cmake writes them as byte arrays into a generated C source
 * in the build tree (dashboard_assets.c) with this table. src/broker/dashboard.c serves them. */
#ifndef FERRY_BROKER_DASHBOARD_ASSETS_H
#define FERRY_BROKER_DASHBOARD_ASSETS_H

#include <stddef.h>

struct dashboard_asset {
    const char *path; /* "/index.html" */
    const char *mime; /* the Content-Type, from the file's extension */
    const unsigned char *data;
    size_t len;
};

extern const struct dashboard_asset dashboard_assets[];
extern const size_t dashboard_assets_n;

/* The asset served at the URL path @path ("/" is "/index.html"; the query string already cut
 * off); NULL when there is none. */
const struct dashboard_asset *dashboard_asset_find(const char *path);

#endif
