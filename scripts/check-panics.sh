#!/usr/bin/env bash
# The panic rule (docs/security.md): nothing reachable from network, configuration-file or UAPI
# input may panic. This lists every `.unwrap()`, `.expect(`, `panic!`, `unreachable!`,
# `todo!`, `unimplemented!` and direct indexing `x[...]` in src/ outside `#[cfg(test)]` items
# and comments, and compares them with scripts/panic-allowlist.txt, where each remaining site
# carries a one-line reason why it cannot fire on such input. Anything not in the allowlist
# fails the check.
#
# Best effort, by design: grep + awk, no parser. Test modules are skipped by brace counting
# from a `#[cfg(test)]` line; braces inside strings can fool it (none do today). A test module
# in a file of its own (`#[cfg(test)]` then `mod tests;`) is skipped as a whole file.
#
# Allowlist lines:   FILE<TAB>CODE<TAB>REASON   (tab-separated; '#' starts a comment line)
#   FILE   path from the repository root (src/...)
#   CODE   the offending source line, trimmed (whitespace runs squeezed to one space)
#   REASON why it cannot fire on untrusted input (required)
# One entry covers every identical line in that file. Entries that match nothing are
# reported as stale (a warning: remove them).
#
# Usage: scripts/check-panics.sh            check (exit 1 on a new site)
#        scripts/check-panics.sh --list     print every site as an allowlist line
set -euo pipefail

cd "$(dirname "$0")/.."
ALLOW=scripts/panic-allowlist.txt

# The files of test-only modules declared out of line: `#[cfg(test)]` (other attributes may
# follow) then `mod NAME;`. For a declaration in src/a/mod.rs (or lib.rs, main.rs) that is
# src/a/NAME.rs or src/a/NAME/mod.rs; in src/a/b.rs, src/a/b/NAME.rs or src/a/b/NAME/mod.rs.
test_files() {
    find src -name '*.rs' -print0 | sort -z | xargs -0 awk '
        FNR == 1 { pending = 0 }
        {
            if ($0 ~ /^[ \t]*#\[cfg\(test\)\]/) { pending = 1; next }
            if (pending && $0 ~ /^[ \t]*#\[/) next
            if (pending && $0 ~ /^[ \t]*(pub(\([a-z]+\))? )?mod [A-Za-z0-9_]+;/) {
                name = $0
                sub(/^[ \t]*(pub(\([a-z]+\))? )?mod /, "", name)
                sub(/;.*$/, "", name)
                dir = FILENAME; sub(/\/[^\/]*$/, "", dir)
                base = FILENAME; sub(/^.*\//, "", base)
                if (base != "mod.rs" && base != "lib.rs" && base != "main.rs") {
                    sub(/\.rs$/, "", base)
                    dir = dir "/" base
                }
                print dir "/" name ".rs"
                print dir "/" name "/mod.rs"
            }
            pending = 0
        }'
}

sites() {
    find src -name '*.rs' | sort | grep -vxF -f <(test_files) | tr '\n' '\0' | xargs -0 awk '
        FNR == 1 { skipping = 0; pending = 0; depth = 0 }
        {
            line = $0
            # Test-only items: from #[cfg(test)] to the end of the item it applies to.
            if (!skipping && line ~ /^[ \t]*#\[cfg\(test\)\]/) { pending = 1; next }
            if (pending) {
                if (line ~ /^[ \t]*#\[/) next
                if (line ~ /\{/) { skipping = 1; depth = 0; pending = 0 }
                else { if (line ~ /;[ \t]*$/) pending = 0; next }
            }
            if (skipping) {
                o = gsub(/\{/, "{", line); c = gsub(/\}/, "}", line)
                depth += o - c
                if (depth <= 0) skipping = 0
                next
            }
            # Drop comments (// to end of line; doc comments too).
            code = line
            # String and char literals hold no code ("[Peer]", b'[' ...).
            gsub(/"([^"\\]|\\.)*"/, "\"\"", code)
            gsub(/b?'"'"'([^'"'"'\\]|\\.)'"'"'/, "'"'"''"'"'", code)
            sub(/\/\/.*$/, "", code)
            # Full-range slicing x[..] cannot panic.
            gsub(/\[\.\.\]/, "", code)
            if (code ~ /\.unwrap\(\)|\.expect\(|panic!|unreachable!|todo!|unimplemented!|[A-Za-z0-9_)\]][[][^]]*[]]/) {
                t = code
                gsub(/[ \t]+/, " ", t); sub(/^ /, "", t); sub(/ $/, "", t)
                print FILENAME "\t" t
            }
        }'
}

if [ "${1:-}" = "--list" ]; then
    sites | sort -u | sed 's/$/\tTODO: why this cannot fire on network, config or UAPI input/'
    exit 0
fi

if [ ! -f "$ALLOW" ]; then
    echo "check-panics: $ALLOW is missing" >&2
    exit 1
fi

# Allowlist entries (FILE | CODE), and a check that each has a reason.
bad_reason=$(awk -F'\t' '!/^#/ && NF > 0 && (NF < 3 || $3 ~ /^[ \t]*$/ || $3 ~ /^TODO/) { print FNR ": " $0 }' "$ALLOW")
if [ -n "$bad_reason" ]; then
    echo "check-panics: allowlist entries without a reason:" >&2
    echo "$bad_reason" >&2
    exit 1
fi
allowed=$(awk -F'\t' '!/^#/ && NF >= 3 { print $1 "\t" $2 }' "$ALLOW" | sort -u)
found=$(sites | sort -u)

new=$(comm -23 <(echo "$found") <(echo "$allowed") | sed '/^$/d')
stale=$(comm -13 <(echo "$found") <(echo "$allowed") | sed '/^$/d')

count=$(echo "$found" | sed '/^$/d' | wc -l)
if [ -n "$stale" ]; then
    echo "check-panics: warning: allowlist entries that match nothing (remove them):"
    echo "$stale" | tr '\t' ' ' | sed 's/^/  /'
fi
if [ -n "$new" ]; then
    echo "check-panics: new possible panic sites in src/ (outside tests):" >&2
    echo "$new" | tr '\t' ' ' | sed 's/^/  /' >&2
    echo >&2
    echo "Make them impossible to reach with untrusted input (get(), checked arithmetic," >&2
    echo "typed errors), or add them to $ALLOW with a one-line reason." >&2
    exit 1
fi
echo "check-panics: ok, $count allowlisted sites, none new"
