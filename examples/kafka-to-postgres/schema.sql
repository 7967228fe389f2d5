-- The table of examples/kafka-to-postgres/job.ts: clicks per user, accumulated batch by batch.
-- (The sink creates its own ledger table, tidemark_ledger, when it is missing.)
CREATE TABLE IF NOT EXISTS user_clicks (
  user_id    text        PRIMARY KEY,
  clicks     bigint      NOT NULL,
  last_page  text        NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
