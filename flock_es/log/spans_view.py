"""The ``spans`` view, in both dialects: one span per agent execution (attempt).

An attempt is a ``task.started`` that ends with the next event of its task (in
its run: a fork copies its parent's task ids) when that is the completion or
failure of the same attempt; one that never ended (a crash, a fork point) is
``unfinished`` with no duration. Schema 6 adds the executions with no
``task.started``: an inline function run that finished on its first step
records only its ``task.completed``, which carries the attempt and the
duration, so its span ends at the completion and starts ``duration_ms`` before.

The SQLite and PostgreSQL texts are separate on purpose: only the dialect
differs (``json_extract`` vs ``->>``, ``strftime`` vs ``to_char``); the field
names and kinds come from ``flock_es.log.body_paths``.

Example (the tutorial's trace query)::

    SELECT name, start_time, duration_ms FROM spans ORDER BY start_time
"""

from __future__ import annotations

from flock_es.log.body_paths import (
    ATTEMPT,
    DONE,
    DONE_AGENT,
    DURATION,
    FAILED,
    STARTED,
    STARTED_AGENT,
)

__all__ = ["PG_SPANS", "SQLITE_SPANS"]


def _sq(alias: str, field: str) -> str:
    return f"json_extract({alias}, '$.{field}')"


def _at(alias: str) -> str:
    # The attempt, 1 when absent (as the event definitions say): a completion
    # pairs with its start even in logs that did not write attempts.
    return f"coalesce({_sq(alias, ATTEMPT)}, 1)"


def _pg_at(alias: str) -> str:
    return f"coalesce(({alias}.body->>'{ATTEMPT}')::INTEGER, 1)"


SQLITE_SPANS = f"""
CREATE VIEW IF NOT EXISTS spans AS
SELECT
    s.run_id                                          AS run_id,
    {_sq("s.body", STARTED_AGENT)} || '.execute'     AS name,
    strftime('%Y-%m-%dT%H:%M:%fZ', s.ts, 'unixepoch') AS start_time,
    CASE WHEN s.ended THEN (s.end_ts - s.ts) * 1000.0 END AS duration_ms,
    s.task_id                                         AS task_id,
    {_sq("s.body", ATTEMPT)}                 AS attempt,
    CASE WHEN NOT s.ended THEN 'unfinished' WHEN s.end_kind = '{DONE}' THEN 'ok'
         ELSE 'error' END                             AS status,
    s.ts                                              AS start_ts,
    CASE WHEN s.ended THEN s.end_ts END               AS end_ts
FROM (
    SELECT t.*,
           coalesce(t.end_kind IN ('{DONE}', '{FAILED}')
                    AND {_sq("t.end_body", ATTEMPT)} = {_sq("t.body", ATTEMPT)}, 0) AS ended
    FROM (
        SELECT run_id, task_id, kind, ts, body, seq,
               lead(kind) OVER w AS end_kind,
               lead(ts) OVER w   AS end_ts,
               lead(body) OVER w AS end_body
        FROM events
        WHERE kind IN ('{STARTED}', '{DONE}', '{FAILED}')
        WINDOW w AS (PARTITION BY run_id, task_id ORDER BY seq)
    ) AS t
) AS s
WHERE s.kind = '{STARTED}'
UNION ALL
SELECT
    c.run_id,
    {_sq("c.body", DONE_AGENT)} || '.execute',
    strftime('%Y-%m-%dT%H:%M:%fZ', c.start_ts, 'unixepoch'),
    c.duration_ms,
    c.task_id,
    {_sq("c.body", ATTEMPT)},
    'ok',
    c.start_ts,
    c.ts
FROM (
    SELECT u.*,
           coalesce({_sq("u.body", DURATION)}, 0.0) AS duration_ms,
           u.ts - coalesce({_sq("u.body", DURATION)}, 0.0) / 1000.0 AS start_ts
    FROM (
        SELECT run_id, task_id, kind, ts, body,
               lag(kind) OVER w AS prev_kind,
               lag(body) OVER w AS prev_body
        FROM events
        WHERE kind IN ('{STARTED}', '{DONE}', '{FAILED}')
        WINDOW w AS (PARTITION BY run_id, task_id ORDER BY seq)
    ) AS u
    WHERE u.kind = '{DONE}'
      AND NOT coalesce(u.prev_kind = '{DONE}'
                       OR (u.prev_kind = '{STARTED}'
                           AND {_at("u.prev_body")} = {_at("u.body")}), 0)
) AS c;
"""
"""SQLite's ``spans`` (schema 6): started attempts, then completions that were their own start."""


PG_SPANS = f"""
DROP VIEW IF EXISTS spans;
CREATE VIEW spans AS
SELECT
    s.run_id                                          AS run_id,
    (s.body->>'{STARTED_AGENT}') || '.execute'                  AS name,
    to_char(to_timestamp(s.ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                                                      AS start_time,
    (e.ts - s.ts) * 1000.0                            AS duration_ms,
    s.task_id                                         AS task_id,
    (s.body->>'{ATTEMPT}')::INTEGER                     AS attempt,
    CASE e.kind WHEN '{DONE}' THEN 'ok' WHEN '{FAILED}' THEN 'error'
         ELSE 'unfinished' END                        AS status,
    s.ts                                              AS start_ts,
    e.ts                                              AS end_ts
FROM events s
LEFT JOIN events e
  ON e.run_id = s.run_id
 AND e.task_id = s.task_id
 AND e.kind IN ('{DONE}', '{FAILED}')
 AND (e.body->>'{ATTEMPT}') = (s.body->>'{ATTEMPT}')
WHERE s.kind = '{STARTED}'
UNION ALL
SELECT
    c.run_id,
    (c.body->>'{DONE_AGENT}') || '.execute',
    to_char(to_timestamp(c.ts - coalesce((c.body->>'{DURATION}')::DOUBLE PRECISION, 0) / 1000.0)
            AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    coalesce((c.body->>'{DURATION}')::DOUBLE PRECISION, 0),
    c.task_id,
    (c.body->>'{ATTEMPT}')::INTEGER,
    'ok',
    c.ts - coalesce((c.body->>'{DURATION}')::DOUBLE PRECISION, 0) / 1000.0,
    c.ts
FROM events c
WHERE c.kind = '{DONE}'
  AND NOT EXISTS (
      SELECT 1 FROM events s
      WHERE s.run_id = c.run_id
        AND s.task_id = c.task_id
        AND s.kind = '{STARTED}'
        AND {_pg_at("s")} = {_pg_at("c")}
  );
"""
"""PostgreSQL migration 5 -> 6: the same ``spans`` (completions that were their own start)."""
