DROP TABLE IF EXISTS analytics_events;
