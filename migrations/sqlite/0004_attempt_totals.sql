-- Attempts summed by provider, outcome and latency bucket, which /metrics
-- reads instead of every attempt: at a million attempts that took 0.9 s of
-- CPU a scrape, and attempts only grow. The recorder adds to these sums in the
-- transaction that inserts the attempts. `bucket` is the first of
-- LATENCY_BUCKETS_MS (src/store/mod.rs) that the latency fits in, counted from
-- 0; 8 above the last; -1 when the send was not timed.
CREATE TABLE attempt_totals (
    provider       TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    bucket         BIGINT NOT NULL,
    attempts       BIGINT NOT NULL,
    latency_ms_sum BIGINT NOT NULL,
    PRIMARY KEY (provider, outcome, bucket)
);

INSERT INTO attempt_totals (provider, outcome, bucket, attempts, latency_ms_sum)
SELECT provider, outcome,
       CASE WHEN latency_ms IS NULL THEN -1
            WHEN latency_ms <= 10 THEN 0
            WHEN latency_ms <= 50 THEN 1
            WHEN latency_ms <= 100 THEN 2
            WHEN latency_ms <= 250 THEN 3
            WHEN latency_ms <= 500 THEN 4
            WHEN latency_ms <= 1000 THEN 5
            WHEN latency_ms <= 5000 THEN 6
            WHEN latency_ms <= 30000 THEN 7
            ELSE 8 END,
       COUNT(*), COALESCE(SUM(latency_ms), 0)
FROM attempts
GROUP BY 1, 2, 3;
