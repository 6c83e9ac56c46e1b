# Lists the property paths of a JSON Schema (as `netprov schema` prints it), one per line,
# in the notation of nix/option-paths.nix: `a.b`, `*` for a map element, `[]` for a list
# element. References into $defs/definitions are followed; anyOf/oneOf/allOf branches
# (Option<T>, untagged enums) contribute their properties at the same path.
def deref($root):
  if type == "object" and has("$ref") then
    (."$ref" | ltrimstr("#/$defs/") | ltrimstr("#/definitions/")) as $n
    | (($root["$defs"] // $root.definitions // {})[$n]) | deref($root)
  else . end;

def join($prefix; $name): if $prefix == "" then $name else $prefix + "." + $name end;

def paths_of($root; $prefix):
  deref($root) as $s
  | if ($s | type) != "object" then empty else
      ( ($s.properties // {}) | to_entries[]
        | join($prefix; .key) as $p
        | $p, (.value | paths_of($root; $p)) ),
      ( (($s.anyOf // []) + ($s.oneOf // []) + ($s.allOf // []))[] | paths_of($root; $prefix) ),
      ( if ($s.additionalProperties | type) == "object"
        then $s.additionalProperties | paths_of($root; join($prefix; "*")) else empty end ),
      ( if ($s.items | type) == "object"
        then $s.items | paths_of($root; join($prefix; "[]")) else empty end )
    end;

. as $root | [paths_of($root; "")] | unique | .[]
