-- Leasing an event (claim, renewal, release) rewrites its row's lease
-- columns, which no index holds: with room left in the page the update
-- stays on the page (HOT) and no index is touched. Full pages — the
-- default for a table filled by inserts — make every lease write every
-- index entry of the row again; a claim of 20 runs of 128 events spent
-- most of its time there.
ALTER TABLE analytics_events SET (fillfactor = 70);
