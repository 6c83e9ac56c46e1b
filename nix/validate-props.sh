# Checks the props files the NixOS module generated, all together (so conflicts between
# containers are found too), when the system is built. Usage: validate-props.sh DIR,
# DIR holding <name>.json per container; needs `netprov` and `jq` in PATH.
# On failure, each problem is printed with the option that defines the value and the
# line of /etc/netprov/<name>.json, and the script exits 1 (failing the build).
# vm-tests/check-nix runs this same script on generated files.
set -euo pipefail
cd "$1"
shopt -s nullglob
files=(*.json)
[ ${#files[@]} -eq 0 ] && exit 0
if out="$(netprov validate --json "${files[@]}" 2>&1)"; then
  exit 0
fi
echo "netprov: the props files generated from services.netprov.containers are invalid:" >&2
# netprov paths are JSON paths (`network.interfaces["eth0.100"].ip4`, `routes[0]`); the
# option path writes a quoted name as `."eth0.100"`. A container name that is not a Nix
# identifier is quoted the same way.
if ! jq -er '
    .errors[]
    | (.file | sub("\\.json$"; "")) as $name
    | ($name | if test("^[A-Za-z_][A-Za-z0-9_'"'"'-]*$") then . else "\"" + . + "\"" end) as $attr
    | (.path | gsub("\\[(?<q>\"[^\"]*\")\\]"; ".\(.q)")) as $path
    | "  services.netprov.containers.\($attr)\(if $path == "" then "" else "." + $path end): \(.message)"
      + " (/etc/netprov/\(.file) line \(.line), column \(.column))"
  ' <<<"$out" >&2 2>/dev/null; then
  # Not netprov's JSON error report (an I/O error, an older netprov): show it as it is.
  echo "$out" | sed 's/^/  /' >&2
fi
exit 1
