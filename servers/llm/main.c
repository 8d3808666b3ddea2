/* SPDX-License-Identifier: MIT */
/*
 * servers/llm/main.c: llm-server's options and main, and what the server
 * is: a mock OpenAI-compatible inference server for the `agents` benchmark
 * and the inference client's tests: chat completions (n choices; also
 * streamed as server-sent events, usage when asked; tool calls by the rule
 * of servers/README.md), embeddings (float or base64), the API's error
 * bodies and x-request-id, a GPU-like limit of requests in service at once
 * with a FIFO (or 429) behind it, and fault modes (429, 500, resets,
 * truncated, oversized, malformed, slow bodies, an error event
 * mid-stream).
 *
 * One process, one thread, plain epoll (edge-triggered), a timer min-heap
 * driving epoll_pwait2's timeout. Not built on myriad on purpose: the
 * server is the fixed ground that every runtime under comparison (myriad,
 * Go, Tokio) is measured against, so it must behave the same for all of
 * them and must not share the scheduler being measured. libc, and
 * jansson for the request bodies:
 *   cd servers && cc -O2 -o llm-server llm/[a-z]*.c srv.c -ljansson
 *
 * The batch is simulated in virtual time: a slot freed by a request whose
 * service ended at time D starts the next queued request at D, not at the
 * moment the event loop got round to it, so that the server's own delays
 * do not lower the bound (concurrency / llm_ms) the clients are held to.
 *
 * Usage: see usage() below; after listening it prints "PORT <n>" on stdout.
 */
#include "llm.h"

static const char *const fault_opt[F_COUNT] = {
	[F_429] = "--fault-429",
	[F_500] = "--fault-500",
	[F_RESET] = "--fault-reset",
	[F_TRUNC] = "--fault-truncate",
	[F_OVERSIZE] = "--fault-oversize",
	[F_MALFORMED] = "--fault-malformed",
	[F_SLOW] = "--fault-slow",
	[F_STREAM_ERR] = "--fault-stream-error",
};

struct llm_opts O = {
	.port = 0,
	.bind = "127.0.0.1",
	.llm_ns = 20 * NSEC_MS,
	.conc = 256,
	.retry_after_s = 1,
	.seed = 1,
	.oversize_bytes = 8 << 20,
	.drip_ns = 50 * NSEC_MS,
	.drip_bytes = 8,
	.max_body = 16 << 20,
};

struct llm_stats S;
struct llm_state L;

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: " PROG " [options]\n"
		"  --port N             listen port, 0: ephemeral (default 0)\n"
		"  --bind ADDR          IPv4 address (default 127.0.0.1)\n"
		"  --max-conns N        connections at once, 0: no limit\n"
		"  --llm-ms MS          service time of a request (default 20)\n"
		"  --concurrency N      requests in service at once (default 256)\n"
		"  --overload queue|429 beyond it: FIFO queue (default) or 429\n"
		"  --retry-after S      Retry-After of a 429, seconds (default 1)\n"
		"  --retry-after-date   send Retry-After as an HTTP-date\n"
		"  --seed N             PRNG seed for the faults (default 1)\n"
		"  --fault-429 F        fraction of requests answered 429 at once\n"
		"  --fault-500 F        ... answered 500 after the service time\n"
		"  --fault-reset F      ... reset (SO_LINGER 0) instead of answered\n"
		"  --fault-truncate F   ... Content-Length larger than the body sent\n"
		"  --fault-oversize F   ... a valid body of --oversize-bytes\n"
		"  --fault-malformed F  ... 200 with non-JSON or no \"choices\"\n"
		"  --fault-slow F       ... body dripped --drip-bytes every --drip-ms\n"
		"  --fault-stream-error F  ... streams: an error event mid-stream\n"
		"  --oversize-bytes N   (default 8388608)\n"
		"  --drip-ms MS         (default 50)    --drip-bytes N (default 8)\n"
		"  --fail-first N       the first N requests get 500\n"
		"  --max-body N         largest request body (default 16 MiB)\n"
		"  --models A,B,...     serve only these models (others: 404)\n"
		"Prints \"PORT <n>\" on stdout once listening.\n");
	exit(code);
}

/* --models a,b,c: the names, and each as JSON text without its quotes. */
static void models_arg(const char *v)
{
	char *list, *tok, *save = NULL;
	json_t *s;
	char *t;

	if (!v || !*v) {
		fprintf(stderr, PROG ": --models: a comma-separated list\n");
		exit(2);
	}
	list = strdup(v);
	O.nmodels = 0;
	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		s = json_string(tok);
		t = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
		if (!t || strlen(t) - 2 > MODEL_MAX) {
			fprintf(stderr, PROG ": --models: bad name '%s'\n",
				tok);
			exit(2);
		}
		t[strlen(t) - 1] = 0;
		O.models = srv_xrealloc(O.models,
					(O.nmodels + 1) * sizeof(*O.models));
		O.model_text = srv_xrealloc(
			O.model_text, (O.nmodels + 1) * sizeof(*O.model_text));
		O.models[O.nmodels] = tok;
		O.model_text[O.nmodels++] = t + 1;
		json_decref(s);
	}
	if (!O.nmodels) {
		fprintf(stderr, PROG ": --models: no model named\n");
		exit(2);
	}
}

static void parse_args(int argc, char **argv)
{
	int i, f;

	for (i = 1; i < argc; i++) {
		char *a = argv[i], *v = NULL, *eq;

		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			usage(0);
		if (!strcmp(a, "--retry-after-date")) {
			O.retry_after_date = 1;
			continue;
		}
		eq = strncmp(a, "--", 2) ? NULL : strchr(a, '=');
		if (eq) {
			*eq = 0;
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		}
#define OPT(s) (!strcmp(a, s))
		if (OPT("--port"))
			O.port = (int)srv_arg_int(PROG, a, v, 0, 65535);
		else if (OPT("--bind"))
			O.bind = v;
		else if (OPT("--max-conns"))
			O.max_conns = (long)srv_arg_int(PROG, a, v, 0, 1 << 30);
		else if (OPT("--llm-ms"))
			O.llm_ns = (uint64_t)(srv_arg_double(PROG, a, v, 0,
							     3.6e6) *
					      1e6);
		else if (OPT("--concurrency"))
			O.conc = (long)srv_arg_int(PROG, a, v, 1, 1 << 30);
		else if (OPT("--overload")) {
			if (v && !strcmp(v, "429"))
				O.overload_429 = 1;
			else if (v && !strcmp(v, "queue"))
				O.overload_429 = 0;
			else {
				fprintf(stderr,
					PROG ": --overload: queue or 429\n");
				exit(2);
			}
		} else if (OPT("--retry-after"))
			O.retry_after_s = srv_arg_double(PROG, a, v, 0, 86400);
		else if (OPT("--seed"))
			O.seed =
				(uint64_t)srv_arg_int(PROG, a, v, 0, INT64_MAX);
		else if (OPT("--oversize-bytes"))
			O.oversize_bytes =
				(size_t)srv_arg_int(PROG, a, v, 1, 1ll << 32);
		else if (OPT("--drip-ms"))
			O.drip_ns = (uint64_t)(srv_arg_double(PROG, a, v, 0,
							      3.6e6) *
					       1e6);
		else if (OPT("--drip-bytes"))
			O.drip_bytes =
				(size_t)srv_arg_int(PROG, a, v, 1, 1 << 20);
		else if (OPT("--fail-first"))
			O.fail_first =
				(uint64_t)srv_arg_int(PROG, a, v, 0, INT64_MAX);
		else if (OPT("--max-body"))
			O.max_body =
				(size_t)srv_arg_int(PROG, a, v, 1, 1ll << 34);
		else if (OPT("--models"))
			models_arg(v);
		else {
			for (f = F_429; f < F_COUNT; f++)
				if (OPT(fault_opt[f]))
					break;
			if (f == F_COUNT) {
				fprintf(stderr, PROG ": unknown option '%s'\n",
					a);
				usage(2);
			}
			O.fault[f] = srv_arg_double(PROG, a, v, 0, 1);
		}
#undef OPT
	}
}

int main(int argc, char **argv)
{
	int bound, sfd;

	parse_args(argc, argv);
	L.rng = O.seed;
	L.free_at = srv_xrealloc(NULL, (size_t)O.conc * sizeof(*L.free_at));
	L.loop.prog = PROG;
	L.loop.full = conns_full;
	L.loop.conn_new = conn_new;
	L.loop.read = loop_read;
	L.loop.kick = loop_kick;
	L.loop.timer = loop_timer;
	srv_raise_nofile();
	sfd = srv_signals();
	if (sfd < 0)
		srv_die(PROG, "signalfd");
	srv_loop_open(&L.loop, O.bind, O.port, 0, &bound, sfd);
	printf("PORT %d\n", bound);
	fflush(stdout);
	srv_run(&L.loop);
	close(L.loop.lfd);
	return 0;
}
