#!/usr/bin/env bash
# common-passwords.sh regenerates internal/identity/password/common_passwords.txt,
# the list of common passwords that package password embeds (go:embed). The
# build never runs it: the generated file is committed.
#
# Source: the "passwords" frequency list of the npm package zxcvbn (MIT,
# Dan Wheeler and Dropbox, Inc.), 30,000 passwords ranked by frequency
# (Xato's 10-million-password corpus). The file keeps the COUNT most
# frequent ones, lower-cased and deduplicated, in rank order, to stay under
# ~150 KB.
#
# Needs npm and node. The tarball is checked against the registry integrity
# pinned below, so a regeneration with the same VERSION is byte-identical.
#
# Usage: scripts/common-passwords.sh            (writes the file)
#        COUNT=20000 scripts/common-passwords.sh (another size)
set -euo pipefail
cd "$(dirname "$0")/.."

version=4.4.2
integrity='sha512-Bq0B+ixT/DMyG8kgX2xWcI5jUvCwqrMxSFam7m0lAf78nf04hv6lNCsyLYdyYTrCVMqNDY/206K7eExYCeSyUQ=='
count=${COUNT:-18000}
out=internal/identity/password/common_passwords.txt

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "zxcvbn@$version" >/dev/null)
tgz="$tmp/zxcvbn-$version.tgz"
got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
if [[ $got != "$integrity" ]]; then
	echo "common-passwords: zxcvbn@$version tarball integrity $got, want $integrity" >&2
	exit 1
fi
tar -xzf "$tgz" -C "$tmp"

node - "$tmp/package" "$version" "$count" >"$out.tmp" <<'JS'
const [dir, version, count] = process.argv.slice(2);
const ranked = require(dir + "/lib/frequency_lists.js").passwords;
const seen = new Set();
const list = [];
for (const pw of ranked) {
  const p = pw.toLowerCase();
  if (p === "" || p.startsWith("#") || /\s/.test(p) || seen.has(p)) continue;
  seen.add(p);
  list.push(p);
  if (list.length === Number(count)) break;
}
const licence = require("fs").readFileSync(dir + "/LICENSE.txt", "utf8").trimEnd().split("\n");
const header = [
  "Common passwords refused by package password (Policy.ForbidCommon).",
  "",
  `Source: npm package zxcvbn@${version}, lib/frequency_lists.js, list "passwords"`,
  "(ranked by frequency in Xato's corpus of 10 million leaked passwords).",
  `Kept: the ${list.length} most frequent of ${ranked.length}, lower-cased, deduplicated,`,
  "in rank order, one a line. Lines starting with # are comments.",
  "Regenerate with scripts/common-passwords.sh; do not edit by hand.",
  "",
  "Licence of the source (MIT):",
  "",
  ...licence,
];
process.stdout.write(header.map(l => ("# " + l).trimEnd()).join("\n") + "\n" + list.join("\n") + "\n");
JS
mv "$out.tmp" "$out"
echo "common-passwords: wrote $out ($(wc -l <"$out") lines, $(wc -c <"$out") bytes)"
