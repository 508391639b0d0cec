/*
 * http_proto.c - the HTTP/1.1 subset the server speaks: "GET /N HTTP/1.x",
 * headers up to the blank line (only Connection is read; a request body is
 * not expected: Content-Length 0 is assumed), and responses of N 'x' bytes.
 */
#include <string.h>
#include <strings.h>

#include "http_server.h"

#define CRLF2 "\r\n\r\n"

/* "/N" with N decimal, no leading zero; *value = N, or false. */
static bool parse_size(const unsigned char *p, size_t n, size_t *value)
{
	size_t v = 0;

	if (n < 2 || p[0] != '/' || p[1] == '0' || n > 12)
		return false;
	for (size_t i = 1; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (size_t)(p[i] - '0');
	}
	*value = v;
	return true;
}

/* Is there a "Connection: close" header line in [p, end)? */
static bool connection_close(const unsigned char *p, const unsigned char *end)
{
	static const char name[] = "connection:";
	const size_t nl = sizeof(name) - 1;

	while (p < end) {
		const unsigned char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		const unsigned char *v;

		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp((const char *)p, name, nl) == 0) {
			v = p + nl;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			if ((size_t)(eol - v) >= 5 && strncasecmp((const char *)v, "close", 5) == 0)
				return true;
		}
		p = eol + 2;
	}
	return false;
}

hs_parse_result hs_parse_request(const unsigned char *p, size_t n, hs_request *req)
{
	const unsigned char *end = memmem(p, n, CRLF2, 4);
	const unsigned char *line_end, *path, *sp;
	size_t size = 0;

	/* Set first: an incomplete request that fills a read buffer is answered
	 * as a bad one, with an empty body, and the connection closed. */
	req->body_size = 0;
	req->keep_alive = false;
	if (end == NULL)
		return HS_REQ_INCOMPLETE;
	req->length = (size_t)(end - p) + 4;
	line_end = memmem(p, (size_t)(end - p) + 2, "\r\n", 2); /* found: end starts one */

	if ((size_t)(line_end - p) < 4 || memcmp(p, "GET ", 4) != 0)
		return HS_REQ_BAD;
	path = p + 4;
	sp = memchr(path, ' ', (size_t)(line_end - path));
	if (sp == NULL || sp == path || (size_t)(line_end - sp) != 9 ||
	    memcmp(sp + 1, "HTTP/1.", 7) != 0 || (sp[8] != '0' && sp[8] != '1'))
		return HS_REQ_BAD;
	req->keep_alive = sp[8] == '1' && !connection_close(line_end + 2, end + 2);
	if (!parse_size(path, (size_t)(sp - path), &size) || size < HS_BODY_MIN ||
	    size > HS_BODY_MAX)
		return HS_REQ_NOT_FOUND;
	req->body_size = size;
	return HS_REQ_OK;
}

/* Status lines and fixed headers, without Content-Length and Connection. */
static const char *status_line(hs_parse_result r)
{
	switch (r) {
	case HS_REQ_OK:
		return "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n";
	case HS_REQ_NOT_FOUND:
		return "HTTP/1.1 404 Not Found\r\n";
	default:
		return "HTTP/1.1 400 Bad Request\r\n";
	}
}

static size_t put_str(char *dst, const char *s)
{
	size_t n = strlen(s);

	memcpy(dst, s, n);
	return n;
}

/* The header, by hand rather than snprintf: per response, its formatting
 * was 2% of the server's CPU samples (perf, 4 KiB responses). */
size_t hs_format_head(char *head, hs_parse_result r, size_t body_size, bool keep_alive)
{
	size_t n = put_str(head, status_line(r));

	n += put_str(head + n, "Content-Length: ");
	n += wl_put_decimal(head + n, body_size);
	n += put_str(head + n, keep_alive ? "\r\nConnection: keep-alive\r\n\r\n"
					  : "\r\nConnection: close\r\n\r\n");
	return n;
}
