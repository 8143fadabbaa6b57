-- aviso schema, SQLite flavour. Times are Unix milliseconds (UTC) so both
-- backends compare them the same way and tests can inject a clock.

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,          -- registry key (id_contacto) or OSC-<slug>
    kind        TEXT NOT NULL,             -- citizen | organization
    first_name  TEXT,                      -- an organisation's name goes here
    last_name   TEXT,
    entity      TEXT,                      -- AGS | DGO | OAX | TAM; may be empty for organisations
    country     TEXT,                      -- ISO 3166 alpha-2
    email       TEXT,
    phone       TEXT,                      -- E.164
    language    TEXT NOT NULL DEFAULT 'es',
    credential  TEXT,
    population  TEXT,
    modality    TEXT,
    row_hash    TEXT NOT NULL,             -- detects "unchanged" on re-import
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX contacts_email ON contacts (email);
CREATE INDEX contacts_phone ON contacts (phone);

CREATE TABLE lists (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE list_members (
    list_id     INTEGER NOT NULL REFERENCES lists (id),
    contact_id  TEXT NOT NULL REFERENCES contacts (id),
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (list_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX list_members_contact ON list_members (contact_id);

CREATE TABLE suppressions (
    address     TEXT NOT NULL,             -- e-mail or E.164 phone
    channel     TEXT NOT NULL,             -- sms | email | all
    reason      TEXT NOT NULL,             -- opt_out | hard_bounce | invalid | deceased | do_not_contact | complaint
    source      TEXT NOT NULL,             -- who said so: cli, import file, dlr, bounce, call centre…
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (address, channel)
) WITHOUT ROWID;

CREATE TABLE activities (
    id          INTEGER PRIMARY KEY,
    code        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    channel     TEXT,                      -- sms | email when aviso sends it; NULL for counted work (calls, events)
    programmed  INTEGER NOT NULL,
    period_from TEXT,                      -- YYYY-MM-DD
    period_to   TEXT,
    split       TEXT NOT NULL DEFAULT 'none', -- how `programmed` spreads over months: none | monthly
    created_at  INTEGER NOT NULL
);

-- Per-entity programmed totals, when the work programme gives them.
CREATE TABLE activity_targets (
    activity_id INTEGER NOT NULL REFERENCES activities (id),
    entity      TEXT NOT NULL,
    programmed  INTEGER NOT NULL,
    PRIMARY KEY (activity_id, entity)
) WITHOUT ROWID;

-- Work the programme counts but aviso does not send (calls, workshops, events).
CREATE TABLE activity_records (
    id          INTEGER PRIMARY KEY,
    activity_id INTEGER NOT NULL REFERENCES activities (id),
    done        INTEGER NOT NULL,
    date        TEXT NOT NULL,             -- YYYY-MM-DD
    note        TEXT,
    created_at  INTEGER NOT NULL
);

CREATE TABLE campaigns (
    id            INTEGER PRIMARY KEY,
    activity_id   INTEGER NOT NULL REFERENCES activities (id),
    name          TEXT NOT NULL,
    template      TEXT NOT NULL,
    channel       TEXT NOT NULL,
    list_id       INTEGER NOT NULL REFERENCES lists (id),
    segment       TEXT NOT NULL DEFAULT '',
    lang_mode     TEXT NOT NULL DEFAULT 'contact', -- contact | es | en | both
    provider      TEXT,
    vars          TEXT NOT NULL DEFAULT '{}',      -- JSON: campaign variables for the template
    attachments   TEXT NOT NULL DEFAULT '[]',      -- JSON: [{path, name, mime, size}]
    state         TEXT NOT NULL,                   -- draft | scheduled | running | paused | completed | cancelled
    pause_reason  TEXT,
    start_at      INTEGER,                         -- one-off schedule
    recurrence    TEXT,                            -- NULL | month
    recur_day     INTEGER,
    recur_time    TEXT,                            -- HH:MM in the configured zone
    recur_until   INTEGER,                         -- no recurring run is due after this
    window_start  TEXT,                            -- HH:MM in the recipient's zone
    window_end    TEXT,
    expires_at    INTEGER,                         -- absolute expiry
    expires_after INTEGER,                         -- ms after a run starts (recurring campaigns)
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    campaign_id   INTEGER NOT NULL REFERENCES campaigns (id),
    period        TEXT NOT NULL,                   -- 'once' or the period key ('2021-10')
    state         TEXT NOT NULL,                   -- running | completed | missed | cancelled
    scheduled_for INTEGER,
    started_at    INTEGER,
    finished_at   INTEGER,
    expires_at    INTEGER,
    total         INTEGER NOT NULL DEFAULT 0,      -- messages frozen into the outbox
    no_address    INTEGER NOT NULL DEFAULT 0,      -- audience members without an address for the channel
    UNIQUE (campaign_id, period)
);

-- The outbox: one row per run × contact × channel, frozen when the run starts,
-- with the contact fields the templates need, so sending never reads contacts.
CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES runs (id),
    campaign_id      INTEGER NOT NULL REFERENCES campaigns (id),
    contact_id       TEXT NOT NULL,
    channel          TEXT NOT NULL,
    address          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    first_name       TEXT,
    last_name        TEXT,
    entity           TEXT,
    country          TEXT,
    language         TEXT NOT NULL,
    credential       TEXT,
    population       TEXT,
    modality         TEXT,
    status           TEXT NOT NULL,   -- queued | sending | sent | delivered | retrying | failed | suppressed | expired | cancelled
    attempts         INTEGER NOT NULL DEFAULT 0,
    series           INTEGER NOT NULL DEFAULT 0,   -- bumped by `campaign retry`
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    lease_epoch      INTEGER NOT NULL DEFAULT 0,   -- bumped at every claim; outcomes must match it
    permanent        INTEGER NOT NULL DEFAULT 0,   -- 1 when failed for a reason retrying cannot fix
    provider         TEXT,
    provider_ref     TEXT,
    last_code        TEXT,
    last_reason      TEXT,
    sent_at          INTEGER,
    delivered_at     INTEGER,
    finished_at      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (run_id, contact_id, channel)
);
CREATE INDEX messages_due ON messages (campaign_id, status, next_attempt_at);
CREATE INDEX messages_lease ON messages (status, lease_expires_at);
CREATE INDEX messages_run ON messages (run_id, status);
CREATE INDEX messages_provider_ref ON messages (provider_ref);

-- Every attempt, for audit: when, through whom, and what the provider said.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    provider    TEXT NOT NULL,
    outcome     TEXT NOT NULL,       -- sent | temporary | permanent
    code        TEXT,
    reason      TEXT,
    worker      TEXT,
    latency_ms  INTEGER                -- how long the provider took to answer
);
CREATE INDEX attempts_message ON attempts (message_id);

-- Delivery reports and bounces received, kept for audit and to refuse replays.
CREATE TABLE receipts (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER REFERENCES messages (id),
    source      TEXT NOT NULL,       -- kannel | twilio | dsn | json | unsubscribe
    status      TEXT NOT NULL,
    dedup_key   TEXT NOT NULL UNIQUE,
    detail      TEXT,
    received_at INTEGER NOT NULL,
    applied     INTEGER NOT NULL DEFAULT 0  -- 0 while its message is still being recorded as sent
);
CREATE INDEX receipts_pending ON receipts (message_id) WHERE applied = 0;

-- Live state of each provider's rate limiter, so `campaign status` can show a slow-down.
CREATE TABLE provider_state (
    name        TEXT PRIMARY KEY,
    rate        REAL NOT NULL,
    base_rate   REAL NOT NULL,
    reason      TEXT,
    updated_at  INTEGER NOT NULL
);

-- Installation-wide values, e.g. the key that signs unsubscribe and receipt
-- tokens: kept in the database so every worker and server of an installation
-- agrees on it without any setup.
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL
);
