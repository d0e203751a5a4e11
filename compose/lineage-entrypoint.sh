#!/bin/sh
# Entry point of the lineaged image: for each environment variable LINEAGE_<FLAG>_FROM_FILE=<path>,
# sets LINEAGE_<FLAG> (the flag's environment override, internal/cliflag) to the file's contents,
# so that passwords and DSNs come from secret files, not from the compose file's environment. A
# file that cannot be read stops the start (fail closed). Then runs the command given.
set -eu
for name in $(env | sed -n 's/^\(LINEAGE_[A-Z0-9_]*\)_FROM_FILE=.*$/\1/p'); do
  eval "file=\${${name}_FROM_FILE}"
  if [ ! -r "$file" ]; then
    echo "lineage-entrypoint: ${name}_FROM_FILE: cannot read $file" >&2
    exit 1
  fi
  value=$(cat "$file")
  export "$name=$value"
  unset "${name}_FROM_FILE"
done
exec "$@"
