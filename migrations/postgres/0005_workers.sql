-- Workers as one sender. A provider with a configured rate is paced for all
-- workers together: `provider_state` (one row per provider) now also holds the
-- next free send slot, from which workers take slots a few at a time, and when
-- its rate last changed (slow-downs and recoveries, at most once a second for
-- the whole fleet), and when a worker was last told to slow down (the rate
-- recovers only once a second has passed without).
ALTER TABLE provider_state ADD COLUMN next_free DOUBLE PRECISION NOT NULL DEFAULT 0; -- ms since the epoch
ALTER TABLE provider_state ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE provider_state ADD COLUMN slowed_at BIGINT NOT NULL DEFAULT 0; -- last refusal any worker reported

-- Each running `aviso worker`, with its heartbeat, for `aviso workers`. A row
-- whose heartbeat is older than its lease is a lost worker; a clean stop
-- deletes its row.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,   -- as in messages.lease_owner
    host         TEXT NOT NULL,
    pid          BIGINT NOT NULL,
    version      TEXT NOT NULL,
    lease_ms     BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
