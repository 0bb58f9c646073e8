package analytics

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidateDrivers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		drivers []string
		want    string // substring of the error; empty = valid
	}{
		{[]string{"production_count", "cdd"}, ""},
		{nil, "no drivers given"},
		{[]string{"production_count", "wind_speed"}, `unknown driver "wind_speed"; valid drivers are production_count, outdoor_temp_c`},
		{[]string{"cdd", "production_count", "cdd"}, `driver "cdd" is listed twice`},
	}
	for _, c := range cases {
		err := ValidateDrivers(c.drivers)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.drivers, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: err %v, want it to contain %q", c.drivers, err, c.want)
		}
	}
}

func TestDesignRow(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	d, err := NewDesign([]string{"production_count", "hdd", "cdd", "temp_segments", "weekday", "hour_of_day"},
		DesignOptions{DegreeBaseC: 18, Location: berlin})
	if err != nil {
		t.Fatal(err)
	}
	// 6 segments for 5 knots, 6 weekday and 23 hour indicators
	if len(d.Columns) != 1+1+1+6+6+23 {
		t.Fatalf("columns = %d: %v", len(d.Columns), d.Columns)
	}
	if d.Columns[3] != "temp_segments[-inf,4.4]" || d.Columns[8] != "temp_segments[32.2,inf]" {
		t.Errorf("segment names %v", d.Columns[3:9])
	}
	// Sunday 2026-03-01 22:00 UTC is Sunday 23:00 in Berlin (CET, UTC+1).
	r := HourlyRow{Hour: time.Date(2026, 3, 1, 22, 0, 0, 0, time.UTC), ProductionCount: 40, OutdoorTempC: 20,
		OperatingHours: math.NaN(), PressureBar: math.NaN(), MaterialMoisturePct: math.NaN()}
	x, ok := d.Row(r)
	if !ok {
		t.Fatal("row not complete")
	}
	// 20 °C with base 18: hdd 0, cdd 2; segments 4.4, 8.4, 5.5, 1.7, 0, 0 (sum 20)
	wantSeg := []float64{4.4, 12.8 - 4.4, 18.3 - 12.8, 20 - 18.3, 0, 0}
	if x[0] != 40 || x[1] != 0 || x[2] != 2 {
		t.Errorf("production, hdd, cdd = %v, want 40, 0, 2", x[:3])
	}
	for i, w := range wantSeg {
		if math.Abs(x[3+i]-w) > 1e-12 {
			t.Errorf("segment %d = %v, want %v", i, x[3+i], w)
		}
	}
	// weekday Sunday is the reference: all six zero; hour 23 → last indicator
	if !slices.Equal(x[9:15], make([]float64, 6)) {
		t.Errorf("weekday indicators %v, want all 0 (Sunday is the reference)", x[9:15])
	}
	if x[len(x)-1] != 1 || slices.Contains(x[15:len(x)-1], 1) {
		t.Errorf("hour indicators %v, want only hour_of_day=23 set", x[15:])
	}
	// a missing driver makes the row incomplete and is reported
	r.ProductionCount = math.NaN()
	if _, ok := d.Row(r); ok {
		t.Errorf("row without production_count was complete")
	}
	if m := d.Missing(r); !slices.Equal(m, []string{"production_count"}) {
		t.Errorf("missing = %v", m)
	}
}

func TestFitKnotsAndCoverage(t *testing.T) {
	t.Parallel()
	d, err := NewDesign([]string{"temp_segments", "pressure_bar"}, DesignOptions{DegreeBaseC: 18})
	if err != nil {
		t.Fatal(err)
	}
	var rows []HourlyRow
	for i := range 10 {
		p := math.NaN()
		if i < 8 {
			p = 7
		}
		rows = append(rows, HourlyRow{OutdoorTempC: 10 + float64(i), PressureBar: p})
	}
	// temperatures 10…19: only knots 12.8 and 18.3 lie strictly inside
	fd := d.FitKnots(rows)
	if !slices.Equal(fd.Knots, []float64{12.8, 18.3}) || len(fd.Columns) != 4 {
		t.Errorf("knots %v columns %v", fd.Knots, fd.Columns)
	}
	cov := fd.Coverage(rows)
	if cov["temp_segments"] != 1 || cov["pressure_bar"] != 0.8 {
		t.Errorf("coverage = %v, want temp 1, pressure 8/10", cov)
	}
}
