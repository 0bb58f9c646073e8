-- Hourly (and 15-minute) rollups of the raw telemetry, with the names and
-- columns of the EnMS aggregates. Sums and counts are stored so every
-- average is exact (never an average of averages); averages are generated
-- columns. Maintained by the statement-level triggers below.

CREATE TABLE energy_readings_15min (
    bucket             timestamptz NOT NULL,
    machine_id         uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count      bigint NOT NULL DEFAULT 0,
    sum_power_kw       double precision NOT NULL DEFAULT 0,
    min_power_kw       double precision,
    max_power_kw       double precision,            -- the largest single reading
    total_energy_kwh   double precision NOT NULL DEFAULT 0,
    sum_power_factor   double precision NOT NULL DEFAULT 0,
    power_factor_count bigint NOT NULL DEFAULT 0,
    sum_voltage_v      double precision NOT NULL DEFAULT 0,
    voltage_count      bigint NOT NULL DEFAULT 0,
    sum_current_a      double precision NOT NULL DEFAULT 0,
    current_count      bigint NOT NULL DEFAULT 0,
    avg_power_kw       double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    -- billing demand: the interval's average power
    peak_demand_kw     double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    avg_power_factor   double precision GENERATED ALWAYS AS (sum_power_factor / nullif(power_factor_count, 0)) STORED,
    avg_voltage_v      double precision GENERATED ALWAYS AS (sum_voltage_v / nullif(voltage_count, 0)) STORED,
    avg_current_a      double precision GENERATED ALWAYS AS (sum_current_a / nullif(current_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE energy_readings_1hour (
    bucket             timestamptz NOT NULL,
    machine_id         uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count      bigint NOT NULL DEFAULT 0,
    sum_power_kw       double precision NOT NULL DEFAULT 0,
    min_power_kw       double precision,
    max_power_kw       double precision,
    total_energy_kwh   double precision NOT NULL DEFAULT 0,
    sum_power_factor   double precision NOT NULL DEFAULT 0,
    power_factor_count bigint NOT NULL DEFAULT 0,
    sum_voltage_v      double precision NOT NULL DEFAULT 0,
    voltage_count      bigint NOT NULL DEFAULT 0,
    sum_current_a      double precision NOT NULL DEFAULT 0,
    current_count      bigint NOT NULL DEFAULT 0,
    peak_demand_kw     double precision,                -- max of the hour's 15-minute average power
    peak_demand_at     timestamptz,                     -- start of that 15-minute interval
    avg_power_kw       double precision GENERATED ALWAYS AS (sum_power_kw / nullif(reading_count, 0)) STORED,
    avg_power_factor   double precision GENERATED ALWAYS AS (sum_power_factor / nullif(power_factor_count, 0)) STORED,
    avg_voltage_v      double precision GENERATED ALWAYS AS (sum_voltage_v / nullif(voltage_count, 0)) STORED,
    avg_current_a      double precision GENERATED ALWAYS AS (sum_current_a / nullif(current_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE production_data_1hour (
    bucket                      timestamptz NOT NULL,
    machine_id                  uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count               bigint NOT NULL DEFAULT 0,
    total_production_count      bigint NOT NULL DEFAULT 0,
    total_production_count_good bigint NOT NULL DEFAULT 0,
    total_production_count_bad  bigint NOT NULL DEFAULT 0,
    sum_throughput              double precision NOT NULL DEFAULT 0,
    throughput_count            bigint NOT NULL DEFAULT 0,
    sum_speed_percent           double precision NOT NULL DEFAULT 0,
    speed_count                 bigint NOT NULL DEFAULT 0,
    -- seconds in each operating mode: each reading stands for the machine's
    -- data_interval_seconds
    running_seconds             double precision NOT NULL DEFAULT 0,
    idle_seconds                double precision NOT NULL DEFAULT 0,
    maintenance_seconds         double precision NOT NULL DEFAULT 0,
    fault_seconds               double precision NOT NULL DEFAULT 0,
    offline_seconds             double precision NOT NULL DEFAULT 0,
    dominant_mode               operating_mode,           -- the mode with the most seconds (ties: the worse state)
    total_downtime_seconds      double precision NOT NULL DEFAULT 0,
    sum_material_moisture       double precision NOT NULL DEFAULT 0,
    material_moisture_count     bigint NOT NULL DEFAULT 0,
    avg_throughput              double precision GENERATED ALWAYS AS (sum_throughput / nullif(throughput_count, 0)) STORED,
    avg_speed_percent           double precision GENERATED ALWAYS AS (sum_speed_percent / nullif(speed_count, 0)) STORED,
    avg_material_moisture       double precision GENERATED ALWAYS AS (sum_material_moisture / nullif(material_moisture_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE TABLE environmental_data_1hour (
    bucket                   timestamptz NOT NULL,
    machine_id               uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    reading_count            bigint NOT NULL DEFAULT 0,
    sum_outdoor_temp_c       double precision NOT NULL DEFAULT 0,
    outdoor_temp_count       bigint NOT NULL DEFAULT 0,
    min_outdoor_temp_c       double precision,
    max_outdoor_temp_c       double precision,
    sum_indoor_temp_c        double precision NOT NULL DEFAULT 0,
    indoor_temp_count        bigint NOT NULL DEFAULT 0,
    sum_machine_temp_c       double precision NOT NULL DEFAULT 0,
    machine_temp_count       bigint NOT NULL DEFAULT 0,
    max_machine_temp_c       double precision,
    sum_humidity_percent     double precision NOT NULL DEFAULT 0,
    humidity_count           bigint NOT NULL DEFAULT 0,
    sum_pressure_bar         double precision NOT NULL DEFAULT 0,
    pressure_count           bigint NOT NULL DEFAULT 0,
    min_pressure_bar         double precision,
    max_pressure_bar         double precision,
    sum_pressure_setpoint_bar double precision NOT NULL DEFAULT 0,
    pressure_setpoint_count  bigint NOT NULL DEFAULT 0,
    sum_flow_rate_m3h        double precision NOT NULL DEFAULT 0,
    flow_rate_count          bigint NOT NULL DEFAULT 0,
    sum_cop                  double precision NOT NULL DEFAULT 0,
    cop_count                bigint NOT NULL DEFAULT 0,
    sum_vibration_mm_s       double precision NOT NULL DEFAULT 0,
    vibration_count          bigint NOT NULL DEFAULT 0,
    max_vibration_mm_s       double precision,
    avg_outdoor_temp_c       double precision GENERATED ALWAYS AS (sum_outdoor_temp_c / nullif(outdoor_temp_count, 0)) STORED,
    avg_indoor_temp_c        double precision GENERATED ALWAYS AS (sum_indoor_temp_c / nullif(indoor_temp_count, 0)) STORED,
    avg_machine_temp_c       double precision GENERATED ALWAYS AS (sum_machine_temp_c / nullif(machine_temp_count, 0)) STORED,
    avg_humidity_percent     double precision GENERATED ALWAYS AS (sum_humidity_percent / nullif(humidity_count, 0)) STORED,
    avg_pressure_bar         double precision GENERATED ALWAYS AS (sum_pressure_bar / nullif(pressure_count, 0)) STORED,
    avg_pressure_setpoint_bar double precision GENERATED ALWAYS AS (sum_pressure_setpoint_bar / nullif(pressure_setpoint_count, 0)) STORED,
    avg_flow_rate_m3h        double precision GENERATED ALWAYS AS (sum_flow_rate_m3h / nullif(flow_rate_count, 0)) STORED,
    avg_cop                  double precision GENERATED ALWAYS AS (sum_cop / nullif(cop_count, 0)) STORED,
    avg_vibration_mm_s       double precision GENERATED ALWAYS AS (sum_vibration_mm_s / nullif(vibration_count, 0)) STORED,
    PRIMARY KEY (machine_id, bucket)
);

CREATE INDEX energy_readings_1hour_bucket_idx ON energy_readings_1hour (bucket);
