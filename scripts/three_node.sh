#!/usr/bin/env bash
# A multi-process deployment on one machine: three nodes under
# `actorflow up`, talking over ipc:// sockets in a private temporary
# directory.
#
#   retrieval  the retrieval actor, its index in a SQLite file
#   chat       the chat actor: extractive (offline) by default, a model
#              when OPENAI_BASE_URL / OPENAI_API_KEY or OLLAMA_HOST is set
#   query      the query and gather actors, which reach the other two
#
# The configs are examples/deploy/*.json with /tmp/af-deploy replaced by
# the temporary directory. The script loads examples/data into the
# retrieval node, streams the answers to a few questions from the query
# node and lists their sources, then stops the supervisor with SIGTERM and
# checks that no socket file is left. Questions given as arguments replace
# the built-in ones:
#   bash scripts/three_node.sh "What is propolis?"
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
AF_BUILD_DIR="$root/build" bash "$root/scripts/build.sh" >/dev/null
af="$root/build/cli/actorflow"

dir=$(mktemp -d /tmp/af-deploy-XXXXXX)
sup=""
cleanup() {
	if [ -n "$sup" ] && kill -0 "$sup" 2>/dev/null; then
		kill -TERM "$sup" 2>/dev/null || true
		wait "$sup" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

for f in up.json retrieval.json query.json; do
	sed "s|/tmp/af-deploy|$dir|g" "$root/examples/deploy/$f" >"$dir/$f"
done
# The chat node's provider, from the variables OpenAI's and Ollama's
# clients read.
python3 - "$dir" >"$dir/chat.json" <<'PY'
import json, os, sys
d = sys.argv[1]
env = os.environ.get
if env("OPENAI_BASE_URL") or env("OPENAI_API_KEY"):
    cfg = {"provider": "openai", "model": env("OPENAI_MODEL") or "gpt-4o-mini"}
    if env("OPENAI_BASE_URL"):
        cfg["base_url"] = env("OPENAI_BASE_URL")
    if env("OPENAI_API_KEY"):
        cfg["api_key_env"] = "OPENAI_API_KEY"
elif env("OLLAMA_HOST"):
    host = env("OLLAMA_HOST")
    if "://" not in host:
        host = "http://" + host
    cfg = {"provider": "ollama", "base_url": host,
           "model": env("OLLAMA_MODEL") or "llama3.2"}
else:
    cfg = {"provider": "extractive"}
print(json.dumps({"name": "chat", "endpoint": "ipc://chat.sock",
                  "ipc_dir": d, "grace_ms": 5000,
                  "actors": [{"type": "chat", "config": cfg}]}, indent=1))
PY
# A command substitution inside echo's arguments would let set -e pass
# over its failure: assign first, then print.
provider=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["actors"][0]["config"]["provider"])' "$dir/chat.json")
echo "three_node: chat provider: $provider"

# The supervisor: its log (one line per event) on stderr, 'ready' on
# stdout once the three nodes serve.
exec 3< <(exec "$af" up "$dir/up.json")
sup=$!
if ! read -r -t 60 -u 3 line || [ "$line" != ready ]; then
	echo "three_node: the nodes did not get ready" >&2
	exit 1
fi

R="ipc://$dir/retrieval.sock#retrieval"
Q="ipc://$dir/query.sock#query"
data=$(python3 -c 'import json,sys; print(json.dumps({"path": sys.argv[1]}))' "$root/examples/data")
echo "three_node: loading examples/data"
loaded=$("$af" ask --timeout 120000 "$R" load_dir "$data")
echo "three_node: loaded examples/data: $loaded"

if [ $# -gt 0 ]; then
	questions=("$@")
else
	questions=("Why does honey crystallise?"
		"How do bees tell each other where the flowers are?"
		"What is propolis?")
fi
for q in "${questions[@]}"; do
	args=$(python3 -c 'import json,sys; print(json.dumps({"query": sys.argv[1]}))' "$q")
	printf '\nQ: %s\nA: ' "$q"
	"$af" stream "$Q" stream_query "$args"
	no_text=$(python3 -c 'import json,sys; a=json.loads(sys.argv[1]); a["response_mode"]="no_text"; print(json.dumps(a))' "$args")
	"$af" ask "$Q" query "$no_text" |
		python3 -c 'import json,sys
for s in json.load(sys.stdin)["source_nodes"]:
    print("   source %-40s score %.3f" % (s["id"], s["score"]))'
done
echo

# SIGTERM to the supervisor: every node stops, exit 0, no socket left.
kill -TERM "$sup"
code=0
wait "$sup" || code=$?
sup=""
exec 3<&-
if [ "$code" -ne 0 ]; then
	echo "three_node: actorflow up exited $code" >&2
	exit 1
fi
left=$(find "$dir" -type s)
if [ -n "$left" ]; then
	echo "three_node: socket files left: $left" >&2
	exit 1
fi
echo "three_node: stopped cleanly, no socket file left"
