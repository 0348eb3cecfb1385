#!/usr/bin/env bash
# Checks the openai provider against an implementation of the OpenAI chat
# API that is not ours: openai-mock-api, from the npm registry, answering
# on 127.0.0.1. It is a scripted server, not a model: what it checks is
# that its framing of streams, answers and errors reads as it should.
#
# Not part of the test suite, which installs nothing from npm; run it by
# hand after changing the openai provider:
#   bash scripts/interop_openai.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
if ! command -v npm >/dev/null; then
	sudo=""
	uid=$(id -u)
	[ "$uid" -eq 0 ] || sudo=sudo
	$sudo apt-get install -y --no-install-recommends nodejs npm
fi
AF_BUILD_DIR="$root/build" bash "$root/scripts/build.sh" >/dev/null

work=$(mktemp -d)
server=""
cleanup() {
	[ -z "$server" ] || kill "$server" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

npm install --prefix "$work" --no-audit --no-fund --silent \
	openai-mock-api@0.4.0
cat >"$work/config.yaml" <<'EOF'
apiKey: 'interop-key'
responses:
  - id: 'system-and-user'
    messages:
      - role: 'system'
        matcher: 'any'
      - role: 'user'
        matcher: 'any'
      - role: 'assistant'
        content: "Bees dance. It says \"quotes\", a tab\there, and ünïcödé ✓."
  - id: 'user'
    messages:
      - role: 'user'
        matcher: 'any'
      - role: 'assistant'
        content: "Hello from another implementation."
EOF
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$work/node_modules/.bin/openai-mock-api" --config "$work/config.yaml" \
	--port "$port" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done

url="http://127.0.0.1:$port/v1"
fail() {
	echo "interop: $*" >&2
	exit 1
}

# stream_chat, as the example streams it: escapes and UTF-8 come through.
out=$(OPENAI_BASE_URL=$url OPENAI_API_KEY=interop-key \
	"$root/build/examples/stream_chat" 2>"$work/err")
grep -qF 'Bees dance. It says "quotes", a tab	here, and ünïcödé ✓.' \
	<<<"$out" || fail "stream_chat printed: $out"
grep -q '^finish: stop' "$work/err" || fail "no finish: $(cat "$work/err")"

# A refused key: the server's own message, exit code 1.
if OPENAI_BASE_URL=$url OPENAI_API_KEY=wrong \
	"$root/build/examples/stream_chat" >/dev/null 2>"$work/err"; then
	fail "a wrong key was accepted"
fi
grep -q 'HTTP 401: Invalid API key' "$work/err" ||
	fail "401 read as: $(cat "$work/err")"

# chat, complete and stream_complete through a flow.
cat >"$work/flow.json" <<EOF
{"description": "the openai provider against openai-mock-api",
 "actors": [{"type": "chat", "config": {"provider": "openai",
   "base_url": "$url", "api_key_env": "INTEROP_KEY", "model": "gpt-4"}}],
 "steps": [
  {"name": "c", "do": "ask", "to": "chat", "type": "chat",
   "payload": {"messages": [{"role": "user", "content": "hi"}]},
   "print": "chat: \${steps.c.content} | \${steps.c.finish_reason} | \${steps.c.usage.prompt_tokens}+\${steps.c.usage.completion_tokens}"},
  {"name": "k", "do": "ask", "to": "chat", "type": "complete",
   "payload": {"prompt": "hi"}, "print": "complete: \${steps.k.content}"},
  {"name": "s", "do": "stream", "to": "chat", "type": "stream_complete",
   "payload": {"prompt": "hi"}, "print": "stream: \${steps.s.text}"}]}
EOF
out=$(INTEROP_KEY=interop-key "$root/build/cli/actorflow" run "$work/flow.json")
for want in 'chat: Hello from another implementation. | stop | ' \
	'complete: Hello from another implementation.' \
	'stream: Hello from another implementation.'; do
	grep -qF "$want" <<<"$out" || fail "flow printed: $out"
done
echo "interop: openai provider ok against openai-mock-api 0.4.0"
