#!/usr/bin/env bash
# moto's AWS emulator (`moto_server`), which tests/prod.rs runs `devenv prod` against: installed
# with pip when it is not on PATH. Nothing is done when it is.
set -euo pipefail
if command -v moto_server >/dev/null 2>&1; then
    exit 0
fi
echo "== installing moto's AWS emulator: python3 -m pip install \"moto[server]\""
python3 -m pip install --quiet --disable-pip-version-check "moto[server]"
# pyenv puts new console scripts on PATH only after a rehash.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash
fi
if ! command -v moto_server >/dev/null 2>&1; then
    echo "moto_server is still not on PATH after pip install; add pip's script directory" \
         "($(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')) to PATH" >&2
    exit 1
fi
