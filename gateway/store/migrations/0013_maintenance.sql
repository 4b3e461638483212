-- The monthly usage statement counts letters by when they were deposited (gateway/store/
-- reports.py, Art 6 tariffs): without an index that query read the whole letters table.
CREATE INDEX letters_deposited ON letters (deposited_at) WHERE deposited_at IS NOT NULL;

-- Queue-like tables: every row is inserted, updated or deleted within seconds, so dead rows
-- pile up at the rate of traffic. The default autovacuum trigger (20% of the table dead) lets
-- a 500,000-row queue carry 100,000 dead rows that every claim must step over; these tables
-- are vacuumed after a fixed number of dead rows instead, without cost-based pauses.
-- (Where autovacuum is off on the server, the gateway vacuums them itself: gateway/maintenance.py.)
ALTER TABLE queue SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
                       autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE receipts_inbox SET (autovacuum_vacuum_scale_factor = 0,
                                autovacuum_vacuum_threshold = 5000, autovacuum_vacuum_cost_delay = 0);
ALTER TABLE message_parts SET (autovacuum_vacuum_scale_factor = 0.05,
                               autovacuum_vacuum_threshold = 10000);
ALTER TABLE jwt_replay SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);
ALTER TABLE callbacks SET (autovacuum_vacuum_scale_factor = 0.05,
                           autovacuum_vacuum_threshold = 10000);
