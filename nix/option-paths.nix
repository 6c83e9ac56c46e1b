# Lists the property paths (an element of an attribute set or list is not a path itself,
# only the options inside it are) that ./props-options.nix declares, without nixpkgs: it is
# evaluated with a stub `lib` that records option declarations instead of checking them.
#
#   nix-instantiate --eval --strict --json nix/option-paths.nix
#
# prints a sorted JSON list such as "network.interfaces.*.ovs.vlan" (`*` stands for an
# attribute name, `[]` for a list element). vm-tests/check-nix compares it with the paths
# of `netprov schema`.
let
  typ = name: extra: { _type = "stub-type"; inherit name; } // extra;
  stubLib = {
    mkOption = attrs: { _type = "stub-option"; } // attrs;
    mkDefault = v: v;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
    types = {
      str = typ "str" { };
      lines = typ "lines" { };
      int = typ "int" { };
      bool = typ "bool" { };
      port = typ "port" { };
      ints.between = lo: hi: typ "int" { };
      strMatching = re: typ "str" { };
      addCheck = t: check: t;
      enum = values: typ "enum" { };
      nullOr = t: typ "nullOr" { elem = t; };
      listOf = t: typ "listOf" { elem = t; };
      attrsOf = t: typ "attrsOf" { elem = t; };
      either = a: b: typ "either" { alts = [ a b ]; };
      oneOf = ts: typ "either" { alts = ts; };
      submodule = m: typ "submodule" { module = m; };
    };
  };

  props = import ./props-options.nix { lib = stubLib; };

  moduleOptions = m:
    (if builtins.isFunction m then m { name = "<name>"; config = { }; lib = stubLib; } else m).options;

  join = prefix: name: if prefix == "" then name else "${prefix}.${name}";

  # The paths below an option of type `t` at `path` (the option itself excluded).
  typePaths = path: t:
    if t.name == "submodule" then optionsPaths path (moduleOptions t.module)
    else if t.name == "nullOr" then typePaths path t.elem
    else if t.name == "attrsOf" then typePaths (join path "*") t.elem
    else if t.name == "listOf" then typePaths (join path "[]") t.elem
    else if t.name == "either" then builtins.concatLists (map (typePaths path) t.alts)
    else [ ];

  optionsPaths = prefix: opts:
    builtins.concatLists (map
      (name:
        let o = opts.${name}; p = join prefix name;
        in [ p ] ++ typePaths p o.type)
      (builtins.attrNames opts));

  sortUnique = l: builtins.sort builtins.lessThan
    (builtins.attrNames (builtins.listToAttrs (map (p: { name = p; value = null; }) l)));
in
sortUnique (optionsPaths "" (moduleOptions props.containerModule))
