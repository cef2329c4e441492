#!/usr/bin/env bash
# ansible-test sanity for this collection, without containers.
#
# ansible-test wants the collection at <dir>/ansible_collections/<namespace>/<name> as a real
# tree, so the files git knows (tracked, plus new files that are not ignored) are copied into a
# temporary tree of that shape, which becomes a git repository of its own (ansible-test lists
# the collection's files with git). The first ansible-test on PATH runs the tests with --local.
#
# Each sanity test still runs in a virtualenv that ansible-test makes and fills from the package
# index. To put pip into a new one, ansible-test runs a "get-pip" bootstrap script that it
# downloads from a host outside the package index, unless the script is in its cache. Here the
# cache holds a stand-in instead: it installs the pip that ships with Python (ensurepip), then
# the packages ansible-test asks for, from the index. ansible-test runs with a HOME of its own
# (SANITY_HOME, default ~/.cache/ansible-test-sanity, kept between runs and checkouts so the
# virtualenvs are made once), so the user's ~/.ansible is left alone.
#
# Usage: tests/sanity.sh [more ansible-test sanity arguments, e.g. --test pep8]
# Environment: SANITY_PYTHON (default: the Python version that runs ansible-test), SANITY_HOME,
#              KEEP_SANITY_TREE=1 keeps the temporary tree.
set -euo pipefail
cd "$(dirname "$0")/.."

ansible_test=$(command -v ansible-test) || { echo "sanity: ansible-test is not on PATH" >&2; exit 2; }
ansible_python=$(dirname "$ansible_test")/python
python_version=${SANITY_PYTHON:-$("$ansible_python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}
read -r namespace name < <("$ansible_python" -c 'import yaml; g = yaml.safe_load(open("galaxy.yml")); print(g["namespace"], g["name"])')
[[ -n ${name:-} ]] || { echo "sanity: no namespace and name in galaxy.yml" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sanity.XXXXXX")
if [[ -z ${KEEP_SANITY_TREE:-} ]]; then
    trap 'rm -rf "$work"' EXIT
fi
tree="$work/ansible_collections/$namespace/$name"
mkdir -p "$tree"

# Tracked and new files as they are in the working tree (a file deleted there is left out).
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' file; do
    if [[ -e $file || -L $file ]]; then
        cp -P --parents -- "$file" "$tree/"
    fi
done

home=${SANITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ansible-test-sanity}
mkdir -p "$home/.ansible/test/cache"
# The pip version ansible-test bootstraps names the script it looks for in its cache.
pip_version=$("$ansible_python" -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])' "$python_version")
cat > "$home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<'PY'
"""Stand-in for the get-pip bootstrap script: pip from ensurepip, then the requested packages."""
import subprocess
import sys

# In a child process: ensurepip turns off the pip configuration of the process it runs in.
subprocess.check_call([sys.executable, "-m", "ensurepip"])
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
PY

cd "$tree"
git init --quiet
git add --all
echo "sanity: $namespace.$name copied to $tree; ansible-test $("$ansible_test" --version | cut -d' ' -f2-) on Python $python_version"
HOME="$home" "$ansible_test" sanity --local --python "$python_version" --color no "$@"
