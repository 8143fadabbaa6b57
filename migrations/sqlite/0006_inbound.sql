-- SMS that citizens send us (BAJA, ALTA, anything else), kept for audit: what
-- arrived, when, from which number, what it asked for, what aviso did, and how
-- the confirmation reply went. The number is personal data, as in contacts.
CREATE TABLE inbound (
    id           INTEGER PRIMARY KEY,
    received_at  INTEGER NOT NULL,
    source       TEXT NOT NULL,       -- kannel | webhook
    phone        TEXT NOT NULL,       -- the sender, E.164
    text         TEXT NOT NULL,
    keyword      TEXT NOT NULL,       -- opt_out | opt_in | unknown
    action       TEXT NOT NULL,       -- suppressed | already_suppressed | resubscribed | kept_suppressed | not_suppressed | ignored
    reply        TEXT NOT NULL DEFAULT 'pending', -- pending | sent | failed | not_sent | no_provider
    reply_detail TEXT                 -- the provider's answer, or why no reply went
);
CREATE INDEX inbound_phone ON inbound (phone);
