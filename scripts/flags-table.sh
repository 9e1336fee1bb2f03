#!/usr/bin/env bash
# flags-table.sh: print every flag of `magpie serve --help` as a Markdown
# table (flag, environment variable, default, meaning), for
# docs/operations.md. Usage: scripts/flags-table.sh [path/to/magpie]
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${1:-}"
if [ -z "$bin" ]; then
	bin="$(mktemp -d)/magpie"
	go build -o "$bin" ./cmd/magpie
fi
"$bin" serve --help 2>&1 | awk '
function flush() {
	if (name == "") return
	def = ""
	# A quoted default may hold parentheses (an LDAP filter): match it
	# to its closing quote.
	if (match(desc, / \(default ("([^"\\]|\\.)*"|[^)"]*)\)$/)) {
		def = substr(desc, RSTART + 10, RLENGTH - 11)
		desc = substr(desc, 1, RSTART - 1)
	}
	env = "MAGPIE_" toupper(name); gsub(/-/, "_", env)
	if (name == "config") env = "MAGPIE_CONFIG"
	gsub(/\|/, "\\|", desc); gsub(/\|/, "\\|", def)
	printf "| `--%s` | `%s` | %s | %s |\n", name, env, (def == "" ? "" : "`" def "`"), desc
	name = ""
}
BEGIN { print "| flag | environment | default | meaning |"; print "|---|---|---|---|" }
/^  -/ { flush(); name = $1; sub(/^-/, "", name); desc = ""; next }
/^    \t/ { line = $0; sub(/^    \t/, "", line); desc = (desc == "" ? line : desc " " line); next }
END { flush() }
'
