-- Every status change of a message (claimed, then recorded) rewrote an entry
-- in four indexes. Now the two indexes the worker reads hold only the
-- messages they look for, and one index serves everything else by campaign.

-- Claims: the messages of a campaign that wait to be sent.
DROP INDEX IF EXISTS messages_due;
CREATE INDEX messages_due ON messages (campaign_id, next_attempt_at)
    WHERE status IN ('queued', 'retrying');

-- Expired and renewed leases: only messages in flight.
DROP INDEX IF EXISTS messages_lease;
CREATE INDEX messages_lease ON messages (lease_expires_at) WHERE status = 'sending';

-- Counts, exports, retries and the end of runs, by campaign and status.
DROP INDEX IF EXISTS messages_run;
CREATE INDEX messages_campaign ON messages (campaign_id, status);

-- No query looks messages up by the provider's reference: receipts carry
-- aviso's own signed token.
DROP INDEX IF EXISTS messages_provider_ref;
