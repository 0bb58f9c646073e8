DROP TABLE IF EXISTS simulator_labels;
