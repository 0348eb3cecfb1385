/*
 * curl_floor.c - the floor for the chat actor's streaming benchmark: a
 * plain C client that runs N concurrent streaming chat requests through
 * one libcurl multi handle driven by epoll (multi_socket_action), and only
 * counts the bytes of the answers. No SSE parsing, no JSON, no actors:
 * what any client of libcurl pays at the least.
 *
 * Each request is POST {url}/v1/chat/completions with "stream": true.
 * Output, one line on stdout:
 *   n=N ok=K failed=F wall_s=W cpu_s=C maxrss_mb=R bytes=B ttfb_med_ms=T
 * cpu_s is user + system time of this process (getrusage), maxrss_mb its
 * peak resident set, ttfb_med_ms the median time from the start of the
 * run to a request's first chunk of text (a byte search, no parsing).
 *
 * Run against tests/mockllm's server, e.g. 1000 streams of 50 chunks at
 * 20 ms:
 *   build/tests/mockllm/mockllm_server --chunks 50 --interval-ms 20 &
 *   build/bench/curl_floor --url http://127.0.0.1:PORT -n 1000
 * (bench/run_chat_bench.py runs the whole comparison).
 *
 * --buffer-size sets every transfer's receive buffer (CURLOPT_BUFFERSIZE).
 * At 1024, libcurl's least, the floor's memory is what libcurl itself
 * needs per stream.
 */
#define _GNU_SOURCE

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char body[] =
	"{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":"
	"\"Say something.\"}],\"stream\":true}";

struct transfer {
	double first_byte; /* seconds since the start; < 0 until then */
	size_t bytes;
};

struct client {
	CURLM *multi;
	int epfd;
	double deadline; /* when libcurl's timer expires; < 0: none */
	double start;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * nmemb;

	/* The first chunk with text, not the first byte: servers (and the
	 * mock) open a stream with an empty "role" chunk at once, and the
	 * clients compared with this one time their first text. The search
	 * stops once it is found. */
	if (t->first_byte < 0) {
		static const char key[] = "\"content\":\"";
		const char *p = data;
		const char *end = data + len;

		while ((p = memmem(p, (size_t)(end - p), key,
				   sizeof(key) - 1)) != NULL) {
			p += sizeof(key) - 1;
			if (p < end && *p != '"') {
				t->first_byte = now_s();
				break;
			}
		}
	}
	t->bytes += len;
	return len;
}

/* libcurl tells which sockets to watch for what: mirror it in epoll. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg,
		     void *sockp)
{
	struct client *c = arg;
	struct epoll_event ev = {.data.fd = fd};

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(c->epfd, EPOLL_CTL_DEL, fd, NULL);
		curl_multi_assign(c->multi, fd, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	/* sockp marks a socket already in the set. */
	if (sockp == NULL) {
		epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &ev);
		curl_multi_assign(c->multi, fd, c);
	} else {
		epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &ev);
	}
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct client *c = arg;

	(void)multi;
	c->deadline = timeout_ms < 0 ? -1 : now_s() + timeout_ms / 1e3;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: curl_floor --url URL -n N [--buffer-size BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	long n = 0;
	long buffer_size = 0; /* 0: libcurl's default, 16 KiB */
	char endpoint[512];
	struct client c = {.deadline = -1};
	struct transfer *ts;
	CURL **easies;
	struct curl_slist *headers = NULL;
	struct epoll_event evs[256];
	int running = 1;
	long ok = 0, failed = 0;
	size_t bytes = 0;
	double *ttfb;
	int n_ttfb = 0;
	double wall;
	struct rusage ru;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = strtol(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--buffer-size") == 0 && i + 1 < argc)
			buffer_size = strtol(argv[++i], NULL, 10);
		else
			usage();
	}
	if (url == NULL || n <= 0)
		usage();
	snprintf(endpoint, sizeof(endpoint), "%s/v1/chat/completions", url);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	c.multi = curl_multi_init();
	c.epfd = epoll_create1(EPOLL_CLOEXEC);
	ts = calloc((size_t)n, sizeof(*ts));
	easies = calloc((size_t)n, sizeof(*easies));
	ttfb = calloc((size_t)n, sizeof(*ttfb));
	if (c.multi == NULL || c.epfd < 0 || ts == NULL || easies == NULL ||
	    ttfb == NULL) {
		fprintf(stderr, "curl_floor: out of resources\n");
		return 1;
	}
	curl_multi_setopt(c.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c.multi, CURLMOPT_SOCKETDATA, &c);
	curl_multi_setopt(c.multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(c.multi, CURLMOPT_TIMERDATA, &c);
	/* One connection per stream, as many as there are streams. */
	curl_multi_setopt(c.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(c.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	curl_multi_setopt(c.multi, CURLMOPT_MAXCONNECTS, n);
	headers = curl_slist_append(headers, "Content-Type: application/json");
	headers = curl_slist_append(headers, "Expect:");

	c.start = now_s();
	for (long i = 0; i < n; i++) {
		CURL *e = curl_easy_init();

		ts[i].first_byte = -1;
		curl_easy_setopt(e, CURLOPT_URL, endpoint);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &ts[i]);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &ts[i]);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_PIPEWAIT, 0L);
		if (buffer_size > 0)
			curl_easy_setopt(e, CURLOPT_BUFFERSIZE, buffer_size);
		curl_multi_add_handle(c.multi, e);
		easies[i] = e;
	}

	while (running > 0) {
		int wait_ms = -1;
		CURLMsg *msg;
		int left;
		int k;

		if (c.deadline >= 0) {
			double left_s = c.deadline - now_s();

			/* Rounded up: waking early would only spin. */
			wait_ms = left_s <= 0 ? 0 : (int)(left_s * 1e3) + 1;
		}
		k = epoll_wait(c.epfd, evs, 256, wait_ms);
		if (k < 0 && errno != EINTR)
			break;
		for (int j = 0; j < k; j++) {
			int flags = 0;

			if (evs[j].events & (EPOLLIN | EPOLLHUP))
				flags |= CURL_CSELECT_IN;
			if (evs[j].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[j].events & EPOLLERR)
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(c.multi, evs[j].data.fd, flags,
						 &running);
		}
		if (c.deadline >= 0 && now_s() >= c.deadline) {
			c.deadline = -1;
			curl_multi_socket_action(c.multi, CURL_SOCKET_TIMEOUT,
						 0, &running);
		}
		while ((msg = curl_multi_info_read(c.multi, &left)) != NULL) {
			long status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle,
					  CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result == CURLE_OK && status == 200)
				ok++;
			else
				failed++;
		}
	}
	wall = now_s() - c.start;

	for (long i = 0; i < n; i++) {
		bytes += ts[i].bytes;
		if (ts[i].first_byte >= 0)
			ttfb[n_ttfb++] = ts[i].first_byte - c.start;
		curl_multi_remove_handle(c.multi, easies[i]);
		curl_easy_cleanup(easies[i]);
	}
	qsort(ttfb, (size_t)n_ttfb, sizeof(*ttfb), cmp_double);
	getrusage(RUSAGE_SELF, &ru);
	printf("n=%ld ok=%ld failed=%ld wall_s=%.3f cpu_s=%.3f maxrss_mb=%.1f "
	       "bytes=%zu ttfb_med_ms=%.1f\n",
	       n, ok, failed, wall,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
	       ru.ru_maxrss / 1024.0, bytes,
	       n_ttfb > 0 ? ttfb[n_ttfb / 2] * 1000 : -1.0);

	curl_multi_cleanup(c.multi);
	curl_slist_free_all(headers);
	curl_global_cleanup();
	close(c.epfd);
	free(ts);
	free(easies);
	free(ttfb);
	return failed > 0 ? 1 : 0;
}
