# Stand-in for the official postgres image, for deploy/compose_smoke.sh where no registry is reachable:
# Debian's PostgreSQL 15 with an entrypoint that honours POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB and
# keeps its data in /var/lib/postgresql/data, as the official image does.
FROM cytoscore-standin/debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD ["postgres"]
