"""The PostgreSQL store's tables, under a schema of the bus's own (``[backend] prefix``),
created and migrated by the first daemon that opens the bus (under an advisory lock, so two
starting at once do not race), with the schema's version in ``meta``.

``deliveries`` holds every unfinished and failed delivery, one row each: ``state`` is
``pending`` (runs once ``due_at`` is past: at once, or after its retry's wait, or at its
scheduled time: then ``retrying`` or ``scheduled`` until a daemon reads it), or ``failed``
(kept in the failed list, ``failed`` its record). ``owner`` is the daemon that read it,
until ``lease_until``, which the owner renews while it lives; ``position`` orders a
listener's deliveries (and an order key's) as they were emitted, or retried from the failed
list. Done rows are deleted at once, so the table holds only what waits; as every delivery
writes a row three times (in, claimed, out), autovacuum is told to visit it after 1% of its
rows changed rather than 20%.
"""

from __future__ import annotations

__all__ = ("VERSION", "create")

VERSION = 1
"""The version of the tables this code reads and writes."""

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text NOT NULL);
CREATE SEQUENCE IF NOT EXISTS delivery_ids;
CREATE SEQUENCE IF NOT EXISTS positions;
CREATE TABLE IF NOT EXISTS deliveries (
    id bigint PRIMARY KEY,
    listener text NOT NULL,
    priority smallint NOT NULL,
    position bigint NOT NULL DEFAULT nextval('positions'),
    order_key text,
    state text NOT NULL,
    due_at timestamptz NOT NULL DEFAULT now(),
    owner text,
    lease_until timestamptz,
    payload bytea NOT NULL,
    failed bytea,
    failed_at double precision
) WITH (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_insert_scale_factor = 0.01);
CREATE INDEX IF NOT EXISTS deliveries_ready ON deliveries (listener, priority, position)
    WHERE owner IS NULL AND state <> 'failed';
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (due_at)
    WHERE owner IS NULL AND state IN ('retrying', 'scheduled');
CREATE INDEX IF NOT EXISTS deliveries_owner ON deliveries (owner, lease_until)
    WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_keys ON deliveries (listener, order_key, position)
    WHERE order_key IS NOT NULL AND state <> 'failed';
CREATE INDEX IF NOT EXISTS deliveries_failed ON deliveries (failed_at) WHERE state = 'failed';
CREATE TABLE IF NOT EXISTS dedupe (
    key text PRIMARY KEY, expires timestamptz NOT NULL, answer bytea NOT NULL);
CREATE INDEX IF NOT EXISTS dedupe_expires ON dedupe (expires);
CREATE TABLE IF NOT EXISTS routes (
    listener text NOT NULL, daemon text NOT NULL, patterns text NOT NULL,
    PRIMARY KEY (listener, daemon));
CREATE TABLE IF NOT EXISTS daemons (
    name text PRIMARY KEY, host text NOT NULL, pid integer NOT NULL,
    started double precision NOT NULL, seen timestamptz NOT NULL, running text NOT NULL,
    held integer NOT NULL, watching boolean NOT NULL DEFAULT false);
CREATE TABLE IF NOT EXISTS counters (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS fires (name text PRIMARY KEY, fired double precision NOT NULL);
CREATE TABLE IF NOT EXISTS pauses (listener text PRIMARY KEY, until double precision);
CREATE TABLE IF NOT EXISTS paces (listener text PRIMARY KEY, next timestamptz NOT NULL);
"""


def create() -> list[str]:
    """The statements that make version :data:`VERSION` of the tables, where missing."""
    return [statement.strip() for statement in _TABLES.split(";") if statement.strip()]
