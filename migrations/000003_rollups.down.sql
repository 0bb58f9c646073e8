DROP TABLE IF EXISTS environmental_data_1hour;
DROP TABLE IF EXISTS production_data_1hour;
DROP TABLE IF EXISTS energy_readings_1hour;
DROP TABLE IF EXISTS energy_readings_15min;
