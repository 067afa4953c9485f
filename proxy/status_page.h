/* The status page served at "/" on the admin port: one self-contained HTML document. */
#ifndef WSRING_PROXY_STATUS_PAGE_H
#define WSRING_PROXY_STATUS_PAGE_H

/* UTF-8 HTML with inline CSS and JavaScript; it reads /ring, /metrics and /lookup itself. */
extern const char status_page_html[];

#endif /* WSRING_PROXY_STATUS_PAGE_H */
