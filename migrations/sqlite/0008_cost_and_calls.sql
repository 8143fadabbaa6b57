-- Cost: a campaign's own budget (millionths of the [prices] currency; NULL
-- means the one in aviso.toml, if any), and the SMS segments a gateway
-- accepted for each message, recorded when it was sent, so the spent cost is
-- counted from what went out, not re-estimated.
ALTER TABLE campaigns ADD COLUMN budget_micros BIGINT;
ALTER TABLE messages ADD COLUMN segments BIGINT;

-- The call centre's attempts brought in by `aviso calls import`, unique per
-- activity by a key made of the row (who, day, outcome, and which repeat of
-- those in the file), so importing a file again counts nothing twice.
CREATE TABLE call_attempts (
    activity_id BIGINT NOT NULL REFERENCES activities (id),
    key         TEXT NOT NULL,
    contact_id  TEXT,
    phone       TEXT,                      -- E.164
    date        TEXT NOT NULL,             -- YYYY-MM-DD
    outcome     TEXT NOT NULL,             -- as the call centre wrote it
    source      TEXT NOT NULL,             -- the file it came from
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (activity_id, key)
);
