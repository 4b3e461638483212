-- The accept function's statements take their arrays as parameters: a custom plan per call
-- buys nothing (the row counts are the batch's, not the data's), yet PostgreSQL plans the
-- first executions and small batches afresh. Measured (docs/PERFORMANCE.md): a one-message
-- call 1.33 ms -> 0.70 ms, a four-message call 1.19 ms -> 0.85 ms, no change from ten up.
-- Quiet hours and idle agencies send one message per call: that is their latency.
ALTER FUNCTION payam_accept_messages(jsonb) SET plan_cache_mode = force_generic_plan;
