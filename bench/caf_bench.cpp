// caf_bench.cpp - the C++ Actor Framework (CAF 0.17) on the two workloads of
// actorflow's runtime benchmark, for comparison with a mature actor runtime.
//
// Workloads, each for every payload size, within one process:
//   rtt_inproc   a pinger actor sends request(ponger, payload).then(...) and
//                sends the next request only when the reply arrived: one
//                message in flight; mean microseconds per round trip.
//   tell_inproc  a sender actor tells N payload messages to a receiver actor
//                that counts them; messages per second received.
//
// The payload is a std::string of the given size. Each send builds a new
// message holding its own copy of the string, as a user's code would; CAF
// never serializes a message between two actors of one process.
//
// Flow control for tell_inproc: sending N messages in one loop is the classic
// CAF throughput benchmark, but CAF mailboxes are unbounded, so with 1 KiB
// payloads the receiver's backlog can reach gigabytes and the figure then
// measures the allocator. By default the sender keeps at most --window
// messages unacknowledged (the receiver acknowledges every window/4), which
// matches ZeroMQ's default inproc queue (SNDHWM + RCVHWM = 2000) that the
// zmq and actorflow figures run under. --window 0 restores the unbounded
// fire-and-forget loop.
//
// Each workload runs twice. Impl "caf" uses CAF's default cooperative
// scheduler: both actors share a pool of worker threads, and a message to an
// idle actor is usually run by the sending worker itself, so a round trip
// need not wake any thread. Impl "caf_detached" spawns both actors with
// caf::detached, one thread each, the same model as actorflow's one mailbox
// loop per actor thread; every message then wakes the receiving thread.
//
// Output: one line per measurement on stdout,
//   RESULT <workload> caf|caf_detached <size> <value> <unit>
// and nothing else on stdout; notes go to stderr.
//
// Written against CAF 0.17 (atom_constant, event_based_actor behaviors,
// response_promise); CAF 0.18 and later changed these APIs.

#include <caf/all.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace
{

using run_atom = caf::atom_constant<caf::atom("run")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;

using clock_type = std::chrono::steady_clock;

uint64_t elapsed_ns(clock_type::time_point since)
{
	return static_cast<uint64_t>(
		std::chrono::duration_cast<std::chrono::nanoseconds>(
			clock_type::now() - since)
			.count());
}

// --- round trip ------------------------------------------------------------

// Spawned with an argument on purpose: CAF 0.17 spawning a function actor
// with no arguments dereferences an empty shared_ptr (UBSan flags it).
caf::behavior ponger(caf::event_based_actor *, size_t size)
{
	return {
		[size](const std::string &payload) -> caf::result<std::string> {
			if (payload.size() != size)
				return caf::make_error(
					caf::sec::unexpected_message);
			return payload;
		},
	};
}

struct pinger_state {
	caf::actor ponger;
	std::string payload;
	uint64_t remaining = 0;
	clock_type::time_point start;
	caf::response_promise done;
};

// One request in flight: the next one leaves from the previous reply's
// continuation.
void ping_next(caf::stateful_actor<pinger_state> *self)
{
	auto &st = self->state;
	self->request(st.ponger, caf::infinite, st.payload)
		.then(
			[self](const std::string &reply) {
				auto &s = self->state;
				if (reply.size() != s.payload.size()) {
					s.done.deliver(caf::make_error(
						caf::sec::unexpected_response));
					return;
				}
				if (--s.remaining > 0)
					ping_next(self);
				else
					s.done.deliver(elapsed_ns(s.start));
			},
			[self](caf::error &err) {
				self->state.done.deliver(err);
			});
}

caf::behavior pinger(caf::stateful_actor<pinger_state> *self,
		     caf::actor ponger_actor, size_t size)
{
	self->state.ponger = std::move(ponger_actor);
	self->state.payload.assign(size, 'x');
	return {
		// Runs n round trips and answers with the nanoseconds they
		// took.
		[self](run_atom, uint64_t n) -> caf::result<uint64_t> {
			auto &st = self->state;
			st.remaining = n;
			st.done = self->make_response_promise();
			st.start = clock_type::now();
			ping_next(self);
			return caf::delegated<uint64_t>{};
		},
	};
}

// --- one-way throughput ----------------------------------------------------

struct receiver_state {
	uint64_t count = 0;
	uint64_t expected = 0;
	uint64_t ack_every = 0;
};

caf::behavior receiver(caf::stateful_actor<receiver_state> *self,
		       uint64_t ack_every)
{
	self->state.ack_every = ack_every;
	return {
		[self](run_atom, uint64_t expected) {
			self->state.count = 0;
			self->state.expected = expected;
		},
		[self](const std::string &) {
			auto &st = self->state;
			++st.count;
			if ((st.ack_every != 0 &&
			     st.count % st.ack_every == 0) ||
			    st.count == st.expected)
				self->send(caf::actor_cast<caf::actor>(
						   self->current_sender()),
					   ack_atom::value, st.count);
		},
	};
}

struct sender_state {
	caf::actor receiver;
	std::string payload;
	uint64_t total = 0;
	uint64_t sent = 0;
	uint64_t window = 0; // 0 = unbounded
	clock_type::time_point start;
	caf::response_promise done;
};

void send_allowed(caf::stateful_actor<sender_state> *self, uint64_t acked)
{
	auto &st = self->state;
	while (st.sent < st.total &&
	       (st.window == 0 || st.sent - acked < st.window)) {
		// A fresh copy per message, like a zmq_send() of a user buffer.
		self->send(st.receiver, std::string{st.payload});
		++st.sent;
	}
}

caf::behavior sender(caf::stateful_actor<sender_state> *self,
		     caf::actor receiver_actor, size_t size, uint64_t window)
{
	self->state.receiver = std::move(receiver_actor);
	self->state.payload.assign(size, 'x');
	self->state.window = window;
	return {
		// Tells n messages and answers with the nanoseconds until the
		// receiver
		// confirmed the last one.
		[self](run_atom, uint64_t n) -> caf::result<uint64_t> {
			auto &st = self->state;
			st.total = n;
			st.sent = 0;
			st.done = self->make_response_promise();
			// Announce the count first; CAF keeps the order of
			// messages between one sender and one receiver.
			self->send(st.receiver, run_atom::value, n);
			st.start = clock_type::now();
			send_allowed(self, 0);
			return caf::delegated<uint64_t>{};
		},
		[self](ack_atom, uint64_t acked) {
			auto &st = self->state;
			if (acked == st.total)
				st.done.deliver(elapsed_ns(st.start));
			else
				send_allowed(self, acked);
		},
	};
}

// --- driver ----------------------------------------------------------------

struct options {
	uint64_t rtt_iters = 20000;
	uint64_t tell_msgs = 2000000;
	uint64_t window = 2000;
	size_t threads = 0; // 0 = CAF's default: max(4, cores)
	bool scheduled = true;
	bool detached = true;
	std::vector<size_t> sizes{16, 1024};
};

[[noreturn]] void die(const std::string &what)
{
	std::fprintf(stderr, "caf_bench: %s\n", what.c_str());
	std::exit(1);
}

uint64_t parse_count(const char *s, bool zero_ok = false)
{
	char *end = nullptr;
	errno = 0;
	unsigned long long v = std::strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || s[0] == '-' || (v == 0 && !zero_ok))
		die(std::string{"not a valid count: "} + s);
	return static_cast<uint64_t>(v);
}

std::vector<size_t> parse_sizes(const char *list)
{
	std::vector<size_t> out;
	std::string s{list};
	size_t pos = 0;
	while (pos <= s.size()) {
		size_t comma = s.find(',', pos);
		if (comma == std::string::npos)
			comma = s.size();
		out.push_back(parse_count(s.substr(pos, comma - pos).c_str()));
		pos = comma + 1;
	}
	return out;
}

void usage(std::FILE *f)
{
	std::fprintf(
		f,
		"usage: caf_bench [--quick] [--rtt-iters N] [--tell-msgs N]\n"
		"                 [--sizes 16,1024] [--window N (0 = "
		"unbounded)]\n"
		"                 [--threads N] [--only scheduled|detached] "
		"[--version]\n"
		"Prints: RESULT <workload> caf|caf_detached <size> <value> "
		"<unit>\n");
}

// Asks `whom` to run n iterations and waits for the nanoseconds it reports.
uint64_t timed_run(caf::scoped_actor &self, const caf::actor &whom, uint64_t n)
{
	uint64_t ns = 0;
	self->request(whom, caf::infinite, run_atom::value, n)
		.receive([&](uint64_t x) { ns = x; },
			 [&](caf::error &err) {
				 die("run failed: " +
				     self->system().render(err));
			 });
	return ns;
}

template <caf::spawn_options Opts>
void bench_rtt(caf::actor_system &sys, const options &o, size_t size,
	       const char *impl)
{
	caf::scoped_actor self{sys};
	auto pong = sys.spawn<Opts>(ponger, size);
	auto ping = sys.spawn<Opts>(pinger, pong, size);
	timed_run(self, ping, o.rtt_iters / 10 > 100 ? o.rtt_iters / 10 : 100);
	uint64_t ns = timed_run(self, ping, o.rtt_iters);
	std::printf("RESULT rtt_inproc %s %zu %.2f us\n", impl, size,
		    static_cast<double>(ns) / 1e3 /
			    static_cast<double>(o.rtt_iters));
	std::fflush(stdout);
	self->send_exit(ping, caf::exit_reason::user_shutdown);
	self->send_exit(pong, caf::exit_reason::user_shutdown);
}

template <caf::spawn_options Opts>
void bench_tell(caf::actor_system &sys, const options &o, size_t size,
		const char *impl)
{
	caf::scoped_actor self{sys};
	uint64_t ack_every = o.window / 4 > 0 ? o.window / 4 : 1;
	auto recv = sys.spawn<Opts>(receiver, o.window == 0 ? 0 : ack_every);
	auto send = sys.spawn<Opts>(sender, recv, size, o.window);
	timed_run(self, send,
		  o.tell_msgs / 20 > 1000 ? o.tell_msgs / 20 : 1000);
	uint64_t ns = timed_run(self, send, o.tell_msgs);
	std::printf("RESULT tell_inproc %s %zu %.0f msg/s\n", impl, size,
		    static_cast<double>(o.tell_msgs) * 1e9 /
			    static_cast<double>(ns));
	std::fflush(stdout);
	self->send_exit(send, caf::exit_reason::user_shutdown);
	self->send_exit(recv, caf::exit_reason::user_shutdown);
}

} // namespace

int main(int argc, char **argv)
{
	options o;
	for (int i = 1; i < argc; ++i) {
		std::string arg = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : nullptr;
		if (arg == "--quick") {
			o.rtt_iters = 2000;
			o.tell_msgs = 100000;
		} else if (arg == "--rtt-iters" && val != nullptr) {
			o.rtt_iters = parse_count(val);
			++i;
		} else if (arg == "--tell-msgs" && val != nullptr) {
			o.tell_msgs = parse_count(val);
			++i;
		} else if (arg == "--window" && val != nullptr) {
			o.window = parse_count(val, true);
			++i;
		} else if (arg == "--threads" && val != nullptr) {
			o.threads = parse_count(val);
			++i;
		} else if (arg == "--only" && val != nullptr) {
			o.scheduled = std::strcmp(val, "scheduled") == 0;
			o.detached = std::strcmp(val, "detached") == 0;
			if (!o.scheduled && !o.detached)
				die("--only takes scheduled or detached");
			++i;
		} else if (arg == "--sizes" && val != nullptr) {
			o.sizes = parse_sizes(val);
			++i;
		} else if (arg == "--version") {
			std::printf("CAF %d.%d.%d\n", CAF_MAJOR_VERSION,
				    CAF_MINOR_VERSION, CAF_PATCH_VERSION);
			return 0;
		} else if (arg == "--help") {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}

	// The configuration is built here rather than parsed from argv: CAF's
	// own parser would reject this program's options.
	caf::actor_system_config cfg;
	if (o.threads != 0)
		cfg.set("scheduler.max-threads", o.threads);
	caf::actor_system sys{cfg};
	std::fprintf(
		stderr,
		"# caf_bench: CAF %d.%d.%d, %zu scheduler threads, rtt %llu "
		"round trips, tell %llu messages, window %llu%s\n",
		CAF_MAJOR_VERSION, CAF_MINOR_VERSION, CAF_PATCH_VERSION,
		sys.scheduler().num_workers(),
		static_cast<unsigned long long>(o.rtt_iters),
		static_cast<unsigned long long>(o.tell_msgs),
		static_cast<unsigned long long>(o.window),
		o.window == 0 ? " (unbounded)" : "");
	for (size_t size : o.sizes) {
		if (o.scheduled) {
			bench_rtt<caf::no_spawn_options>(sys, o, size, "caf");
			bench_tell<caf::no_spawn_options>(sys, o, size, "caf");
		}
		if (o.detached) {
			bench_rtt<caf::detached>(sys, o, size, "caf_detached");
			bench_tell<caf::detached>(sys, o, size, "caf_detached");
		}
	}
	return 0;
}
