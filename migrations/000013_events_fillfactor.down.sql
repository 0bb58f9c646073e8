ALTER TABLE analytics_events RESET (fillfactor);
