# syntax=docker/dockerfile:1
#
# ballast in a container, for the Kubernetes manifests in deploy/kubernetes/ and for CI.
#
#   docker build -t ballast:0.1.0-pg17 .
#   docker build --build-arg PG_MAJOR=16 -t ballast:0.1.0-pg16 .
#   docker run --rm -e DATABASE_URL -v "$PWD:/project" ballast:0.1.0-pg17 status
#
# The image carries pg_dump and pg_restore of ONE PostgreSQL major version, PG_MAJOR.
# pg_dump must be at least as new as the server it dumps (ballast checks this up front
# and refuses with exit 3, before anything changes), and a newer pg_dump reads older
# servers fine: build with the newest major any of your servers runs.

ARG DEBIAN_CODENAME=bookworm
ARG RUST_VERSION=1

# --- build ------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_CODENAME} AS builder

# The migration lint parses SQL with PostgreSQL's own parser (the pg_query crate): it
# compiles libpg_query from C and generates its bindings with bindgen, which needs libclang.
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole source: the binary embeds pipelines/*.toml and examples/migrations, and
# Cargo.toml names the benches. .dockerignore keeps target/ and .git out.
COPY . .

# --locked: exactly the versions in Cargo.lock, or fail. The cache mounts keep the
# registry and target/ between builds; the binary is copied out of the cached target/
# in the same step, since the mount is gone afterwards.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ballast \
 && install -D -m 0755 target/release/ballast /out/ballast

# --- runtime ----------------------------------------------------------------------------
# The same Debian release as the builder, so the binary finds the glibc it was linked to.
FROM debian:${DEBIAN_CODENAME}-slim AS runtime

ARG DEBIAN_CODENAME
# The PostgreSQL client major: pg_dump/pg_restore. At least your newest server's major.
ARG PG_MAJOR=17

# Debian ships one PostgreSQL major per release (15 on bookworm); the PostgreSQL
# project's own repository (PGDG, apt.postgresql.org) has every supported one.
# ca-certificates: TLS to the database and to S3. curl: fetches the PGDG key here, and
# posts notifications from deploy/notify-slack.sh; jq lets that hook read the run summary.
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl; \
    install -d /usr/share/postgresql-common/pgdg; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt ${DEBIAN_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    apt-get update; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_MAJOR}" jq; \
    rm -rf /var/lib/apt/lists/*

# The versioned bin folder first, so `pg_dump` is this major's binary itself rather than
# Debian's pg_wrapper (which picks a version by its own rules). ballast takes pg_restore
# from the same folder as pg_dump.
ENV PATH="/usr/lib/postgresql/${PG_MAJOR}/bin:${PATH}"

# A fixed, numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric
# USER, and the manifests pin the same uid (runAsUser: 10001).
RUN groupadd --system --gid 10001 ballast \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/ballast --create-home \
        --shell /usr/sbin/nologin ballast

COPY --from=builder /out/ballast /usr/local/bin/ballast
# An example failure hook (see the script's header); harmless when unused.
COPY --chmod=0755 deploy/notify-slack.sh /usr/local/libexec/ballast/notify-slack.sh

# Fail the build, not the first deploy, when the binary or the client is broken.
RUN ballast --version && pg_dump --version && pg_restore --version

USER 10001:10001
# ballast reads ./deploy.toml by default: mount a project here, or pass --config.
WORKDIR /project

# ballast handles SIGTERM itself (before the upgrade it stops at once; during it, it
# cancels the running statement and climbs the recovery ladder), so it runs as PID 1.
# It never prompts without a terminal: changes need --yes.
ENTRYPOINT ["ballast"]
CMD ["--help"]
