-- The frequency cap (N messages per period to one recipient on one channel,
-- across campaigns). Kept beside the campaigns and the outbox, not in them,
-- so that a campaign without a cap reads and writes nothing more than before.

-- A campaign's cap, fixed when it is created (from --frequency-cap or aviso.toml).
CREATE TABLE campaign_caps (
    campaign_id  BIGINT PRIMARY KEY REFERENCES campaigns (id),
    cap_count    BIGINT NOT NULL,
    period_ms    BIGINT NOT NULL,
    when_capped  TEXT NOT NULL              -- hold | defer
);

-- One row per recipient (channel, lower-cased address) that a capped campaign
-- has claimed for: a claim locks its recipients' rows, in order, so that
-- workers deciding for the same recipient at once decide one after the other.
CREATE TABLE cap_recipients (
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    PRIMARY KEY (channel, address)
);

-- Every message of a capped campaign let through the cap, and when (its
-- latest claim). What counts against a recipient's cap is these rows within
-- the period whose message did not end unsent (expired, cancelled).
CREATE TABLE cap_ledger (
    message_id  BIGINT PRIMARY KEY REFERENCES messages (id),
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX cap_ledger_recipient ON cap_ledger (channel, address, at);
