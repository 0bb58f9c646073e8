#!/usr/bin/env bash
# Installs the distribution packages enms-analytics needs, when missing:
# the PostgreSQL server (required), nginx and Chromium (integration tests).
set -euo pipefail

have_postgres() {
	local d
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		[[ -x "$d/postgres" && -x "$d/initdb" ]] && return 0
	fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/postgres" && -x "$d/initdb" ]] && return 0
	done
	return 1
}

missing=()
have_postgres || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || missing+=(nginx-light)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if ((${#missing[@]} == 0)); then
	echo "deps: PostgreSQL server, nginx and Chromium are installed"
	exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
	if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
		as_root=(sudo)
	else
		echo "deps: missing ${missing[*]}; install them as root:" >&2
		echo "  apt-get install -y ${missing[*]}" >&2
		echo "(or point DATABASE_URL at an existing PostgreSQL 15+ server)" >&2
		exit 1
	fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing ${missing[*]} and this is not a Debian/Ubuntu system (no apt-get);" >&2
	echo "  install the PostgreSQL 15+ server binaries (initdb, postgres), nginx and Chromium with your package manager" >&2
	exit 1
fi
echo "deps: installing ${missing[*]} from the distribution's packages"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# The postgresql package would start a system cluster; we run our own, so
# keep service start-up out of the way (policy-rc.d exit 101 = "don't start").
"${as_root[@]}" bash -c 'if [ ! -e /usr/sbin/policy-rc.d ]; then printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; trap "rm -f /usr/sbin/policy-rc.d" EXIT; fi; apt-get install -y -qq --no-install-recommends '"${missing[*]}"
have_postgres || { echo "deps: PostgreSQL server binaries still not found after install" >&2; exit 1; }
echo "deps: done"
