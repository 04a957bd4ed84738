#!/bin/sh
# Install the pgvector extension into the machine's PostgreSQL (15 by default), for the Postgres
# memory backend and its tests. Debian bookworm ships no pgvector package, so this builds the
# release Debian's own pgvector package is made from (trixie: 0.8.0), verified by its checksum,
# against the server headers of postgresql-server-dev-N. Needs root (apt-get, make install);
# does nothing when the extension is already installed.
set -eu
PG_MAJOR="${PG_MAJOR:-15}"
VERSION=0.8.0
SHA256=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
URL="http://deb.debian.org/debian/pool/main/p/pgvector/pgvector_${VERSION}.orig.tar.gz"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
# The same CPU baseline as the llama.cpp build (portable AVX2 + FMA, x86-64-v3), so that the
# vector distances vectorise; pgvector's default (-march=native) would tie the build to this CPU.
OPTFLAGS="${PGVECTOR_OPTFLAGS:--march=x86-64-v3}"
STAMP="/usr/share/postgresql/${PG_MAJOR}/extension/vector.memora-build"

if [ ! -x "$PG_CONFIG" ] && [ ! -x "/usr/lib/postgresql/${PG_MAJOR}/bin/postgres" ]; then
    echo "PostgreSQL ${PG_MAJOR} is not installed (/usr/lib/postgresql/${PG_MAJOR}/bin); install postgresql-${PG_MAJOR}" >&2
    exit 1
fi
CONTROL="/usr/share/postgresql/${PG_MAJOR}/extension/vector.control"
if [ -f "$CONTROL" ] && [ ! -f "$STAMP" ]; then
    # installed by someone else (a distribution package): keep it if it has iterative scans
    installed="$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" "$CONTROL")"
    if [ "$(printf '%s\n0.8.0\n' "$installed" | sort -V | head -1)" = "0.8.0" ]; then
        exit 0
    fi
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${VERSION} ${OPTFLAGS}" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "pgvector is missing and installing it needs root: run 'sudo $0' once" >&2
    exit 1
fi
if [ ! -d "/usr/include/postgresql/${PG_MAJOR}/server" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-server-dev-${PG_MAJOR}" >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/pgvector.tar.gz" "$URL"
echo "$SHA256  $work/pgvector.tar.gz" | sha256sum -c - >/dev/null
tar -xzf "$work/pgvector.tar.gz" -C "$work"
make -s -C "$work/pgvector-${VERSION}" PG_CONFIG="$PG_CONFIG" OPTFLAGS="$OPTFLAGS" >/dev/null
make -s -C "$work/pgvector-${VERSION}" PG_CONFIG="$PG_CONFIG" OPTFLAGS="$OPTFLAGS" install >/dev/null
echo "${VERSION} ${OPTFLAGS}" > "$STAMP"
echo "pgvector ${VERSION} (${OPTFLAGS}) installed for PostgreSQL ${PG_MAJOR}"
