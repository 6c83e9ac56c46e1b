# Checks the props files the NixOS module generated, all together (so conflicts between
# containers are found too), when the system is built. Usage: validate-props.sh DIR,
# DIR holding <name>.json per container; needs `netprov` and `jq` in PATH (and
# `unshare` when not run as root). vm-tests/check-nix runs this same script.
#
# On failure, each problem is printed with the option that defines the value and the
# line of /etc/netprov/<name>.json, and the script exits 1 (failing the build).
#
# In the build sandbox: `netprov validate` dry-runs each nftables ruleset in a scratch
# network namespace, which needs CAP_SYS_ADMIN: as the nftables module's checkRuleset
# does, it runs as root of a new user namespace (`unshare -rn`). A ruleset that names the
# container's interfaces needs placeholder interfaces, which netprov makes from
# /dev/net/tun, absent in the sandbox; when such a check cannot run (netprov exits 1,
# not 2), the files are validated again without their rulesets (`"nft": ""` on the same
# line) and the rulesets are left to `netprov apply`, which checks them before it
# touches anything.
set -euo pipefail
cd "$1"
shopt -s nullglob
files=(*.json)
[ ${#files[@]} -eq 0 ] && exit 0

validate() { # files...
  if [ "$(id -u)" -eq 0 ]; then netprov validate --json "$@"
  else unshare -rn netprov validate --json "$@"; fi
}

report() { # netprov's output
  echo "netprov: the props files generated from services.netprov.containers are invalid:" >&2
  # netprov paths are JSON paths (`network.interfaces["eth0.100"].ip4`, `routes[0]`);
  # the option path writes a quoted name as `."eth0.100"`. A container name that is not
  # a Nix identifier is quoted the same way.
  if ! jq -er '
      .errors[]
      | (.file | sub("^.*/"; "") | sub("\\.json$"; "")) as $name
      | ($name | if test("^[A-Za-z_][A-Za-z0-9_'"'"'-]*$") then . else "\"" + . + "\"" end) as $attr
      | (.path | gsub("\\[(?<q>\"[^\"]*\")\\]"; ".\(.q)")) as $path
      | "  services.netprov.containers.\($attr)\(if $path == "" then "" else "." + $path end): \(.message)"
        + (if .line == null then "" else " (/etc/netprov/\($name).json line \(.line), column \(.column))" end)
    ' <<<"$1" >&2 2>/dev/null; then
    # Not netprov's JSON error report (an I/O error, an older netprov): show it as it is.
    echo "$1" | sed 's/^/  /' >&2
  fi
  exit 1
}

set +e
out="$(validate "${files[@]}" 2>&1)"
rc=$?
set -e
case $rc in
  0) exit 0 ;;
  2) report "$out" ;;
esac

echo "netprov: could not dry-run the nftables rulesets here; validating without them (netprov apply checks them before it changes anything):" >&2
echo "$out" | sed 's/^/  /' >&2
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for f in "${files[@]}"; do
  # One JSON string per line (the module writes one value per line): blank the ruleset,
  # keeping the line numbers.
  sed -E 's/^(\s*"nft": )".*"(,?)$/\1""\2/' "$f" >"$scratch/$f"
done
cd "$scratch"
set +e
out="$(validate "${files[@]}" 2>&1)"
rc=$?
set -e
case $rc in
  0) exit 0 ;;
  *) report "$out" ;;
esac
